"""The generic training loop: outputs, loss falls, exact resume, LR schedule, DDP with two gloo processes."""

from __future__ import annotations

import json
import math
import os
import socket

import pytest
import torch
from helpers import make_toy_dataset

from himbench.checkpoints import load_model
from himbench.io import InputError
from himbench.training import TrainConfig, find_latest_checkpoint, lr_at, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SMALL = {"input_size": 64}


def _config(data, out, **kw) -> TrainConfig:
    base = dict(
        model="e2ehim-tiny",
        data=str(data),
        out=str(out),
        steps=6,
        batch_size=2,
        lr=2e-3,
        warmup_steps=2,
        size=64,
        seed=0,
        log_every=2,
        checkpoint_every=0,
        threads=1,
        model_overrides=dict(SMALL),
    )
    base.update(kw)
    return TrainConfig(**base)


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(lr=1.0, steps=110, warmup_steps=10, min_lr_ratio=0.0)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.5)  # half way through the cosine
    assert lr_at(110, cfg) == pytest.approx(0.0, abs=1e-12)
    values = [lr_at(s, cfg) for s in range(10, 110)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_train_writes_run_folder_and_loss_falls(tmp_path):
    data = make_toy_dataset(tmp_path / "data", num_images=4, shards=2, seed=1)
    result = train(_config(data, tmp_path / "run", steps=16, log_every=4, checkpoint_every=8), progress=False)
    run = tmp_path / "run"
    for name in (
        "train_config.json",
        "log.csv",
        "log.jsonl",
        "loss.png",
        "final/model.safetensors",
        "final/config.json",
        "checkpoints/step_0000008/optimizer.pt",
        "checkpoints/step_0000016/model.safetensors",
    ):
        assert (run / name).is_file(), name
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [4, 8, 12, 16]
    assert all(math.isfinite(r["loss"]) and r["steps_per_s"] > 0 for r in rows)
    assert rows[-1]["loss"] < 0.6 * rows[0]["loss"]
    assert (run / "log.csv").read_text().splitlines()[0].startswith("step,epoch,lr,steps_per_s,loss")
    assert result.steps == 16 and find_latest_checkpoint(run).name == "step_0000016"
    model = load_model(run / "final")
    assert model.config.input_size == 64
    assert json.loads((run / "final" / "config.json").read_text())["train_step"] == 16


def test_resume_continues_exactly(tmp_path):
    # 4 samples, batch 2: 2 steps per epoch, so the step-4 checkpoint sits on an epoch boundary and the resumed run
    # sees exactly the batches the uninterrupted run saw.
    data = make_toy_dataset(tmp_path / "data", num_images=4, shards=1, seed=2)
    full = train(_config(data, tmp_path / "full", steps=6, checkpoint_every=4), progress=False)
    resumed = train(
        _config(data, tmp_path / "resumed", steps=6, resume=str(tmp_path / "full" / "checkpoints" / "step_0000004")),
        progress=False,
    )
    assert resumed.steps == 6
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    # and resuming really started from the checkpoint, not from scratch
    fresh = train(_config(data, tmp_path / "fresh", steps=2), progress=False)
    assert any(not torch.allclose(a[k], fresh.model.state_dict()[k]) for k in a if a[k].is_floating_point())


def test_init_starts_from_weights_with_a_new_schedule(tmp_path):
    data = make_toy_dataset(tmp_path / "data", num_images=4, shards=1, seed=3)
    first = train(_config(data, tmp_path / "first", steps=4), progress=False)
    # lr 0: the fine-tuning run cannot move the parameters (BatchNorm statistics still move), so they must equal the
    # ones it was initialised from
    tuned = train(_config(data, tmp_path / "tuned", steps=2, lr=0.0, init=str(tmp_path / "first" / "final")),
                  progress=False)
    a, b = dict(first.model.named_parameters()), dict(tuned.model.named_parameters())
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)
    assert tuned.steps == 2  # a new schedule from step 0, not a resume at step 4
    assert json.loads((tmp_path / "tuned" / "train_config.json").read_text())["init"].endswith("final")
    with pytest.raises(InputError, match="model.safetensors"):
        train(_config(data, tmp_path / "bad", steps=1, init=str(tmp_path / "data")), progress=False)


def test_models_name_the_parameters_that_skip_weight_decay():
    from himbench.registry import create_model

    model = create_model("e2ehim-tiny", input_size=64)
    skipped = model.no_weight_decay()
    assert skipped and all(name.endswith(("bias_table", "level_embed")) for name in skipped)
    assert any(name.endswith("level_embed") for name in skipped)
    assert all(dict(model.named_parameters())[name].ndim >= 2 for name in skipped)  # not already skipped as norms


def test_resume_mid_epoch_continues_the_same_data_order(tmp_path):
    # 6 samples, batch 2: 3 steps per epoch; the step-4 checkpoint sits one batch into the second epoch. The resumed
    # run must skip that batch (not restart the epoch), so that it ends with the uninterrupted run's weights.
    data = make_toy_dataset(tmp_path / "data", num_images=6, shards=1, seed=3)
    full = train(_config(data, tmp_path / "full", steps=7, checkpoint_every=4), progress=False)
    resumed = train(
        _config(data, tmp_path / "resumed", steps=7, resume=str(tmp_path / "full" / "checkpoints" / "step_0000004")),
        progress=False,
    )
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, data: str, out: str, sums: str) -> None:
    os.environ.update(
        {
            "WORLD_SIZE": str(world),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    import torch.distributed as dist

    torch.set_num_threads(1)
    result = train(_config(data, out, steps=3, threads=1, device="cpu"), progress=False)
    checksum = sum(float(p.double().sum()) for p in result.model.parameters())
    with open(os.path.join(sums, f"rank{rank}.json"), "w") as f:
        json.dump({"checksum": checksum, "steps": result.steps}, f)
    dist.destroy_process_group()


def test_ddp_two_cpu_processes_with_gloo(tmp_path):
    import torch.multiprocessing as mp

    data = make_toy_dataset(tmp_path / "data", num_images=4, shards=2, seed=3)
    sums = tmp_path / "sums"
    sums.mkdir()
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(data), str(tmp_path / "run"), str(sums)), nprocs=2, join=True)
    r0 = json.loads((sums / "rank0.json").read_text())
    r1 = json.loads((sums / "rank1.json").read_text())
    assert r0["steps"] == r1["steps"] == 3
    # Each rank saw different samples; identical weights after the steps prove gradients were all-reduced.
    assert r0["checksum"] == pytest.approx(r1["checksum"], rel=1e-9, abs=1e-9)
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
