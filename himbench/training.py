"""Generic training loop for any registered model (protocol in :mod:`himbench.registry`).

AdamW with linear warm-up then cosine decay to ``min_lr_ratio * lr``; gradient clipping; autocast on CUDA (bf16
where supported, else fp16 with a grad scaler); DistributedDataParallel when launched by ``torchrun`` (gloo on CPU,
nccl on GPU; each rank reads a disjoint shard of every epoch through ``DistributedSampler``).

A run folder holds::

    train_config.json                   the resolved TrainConfig
    log.csv, log.jsonl                  one row per logged step (lr, loss and its components, speed)
    loss.png                            the loss curve
    checkpoints/step_NNNNNNN/           model.safetensors + config.json (see himbench.checkpoints),
                                        optimizer.pt (tensors/numbers only; loaded with weights_only=True),
                                        trainer_state.json (step, epoch)
    final/                              model.safetensors + config.json of the last step (a Hub-ready folder)

Resuming (``resume=PATH``, a checkpoint folder or a run folder, whose latest checkpoint is used) restores the
weights, optimizer moments and step, and continues the data order where it stopped, mid-epoch included: the epoch's
shuffled order is a pure function of (seed, epoch), and the first ``step % batches_per_epoch`` batches of the resumed
epoch are skipped at the sampler, before any sample is decoded. So an interrupted and resumed run sees exactly the
batches of an uninterrupted one (models that draw random numbers in training, e.g. dropout, draw other ones).
Under DDP the logged losses are rank 0's, and only rank 0 writes files.

Fine-tuning (``init=PATH``, a checkpoint folder) loads only the weights: the optimizer, the step and the schedule start
afresh, so a model trained elsewhere (another machine, another data set) continues under a new schedule.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from himbench.io import InputError, parse_json, read_file_bytes, read_json
from himbench.io.atomic import atomic_write_bytes, atomic_write_text

__all__ = ["MAX_TRAIN_SIZE", "TrainConfig", "TrainResult", "find_latest_checkpoint", "lr_at", "plot_losses", "train"]

MAX_TRAIN_SIZE = 8192  # square training size in pixels; above this a typo would allocate tens of GB per batch


@dataclass
class TrainConfig:
    model: str = "e2ehim-tiny"
    data: str = ""
    out: str = "runs/e2ehim-tiny"
    split: str = "train"
    steps: int = 1000
    batch_size: int = 4
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_steps: int = 50
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0
    size: int | None = None  # square input size; None = the model's config.input_size
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # autocast on CUDA only
    augment: bool = True
    log_every: int = 10
    checkpoint_every: int = 500
    resume: str | None = None
    init: str | None = None  # start from these weights (a checkpoint folder) with a new optimizer and schedule
    threads: int | None = None  # torch.set_num_threads on CPU
    model_overrides: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise :class:`InputError` (source ``train config``) listing every value out of range."""
        problems = []
        for name in ("steps", "batch_size", "log_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name} must be an integer >= 1")
        for name in ("warmup_steps", "num_workers", "checkpoint_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                problems.append(f"{name} must be an integer >= 0")
        for name in ("lr", "weight_decay", "min_lr_ratio", "grad_clip"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                problems.append(f"{name} must be a finite number >= 0")
        if self.size is not None and not 32 <= self.size <= MAX_TRAIN_SIZE:
            problems.append(f"size must be 32 to {MAX_TRAIN_SIZE} px")
        if not isinstance(self.model_overrides, dict):
            problems.append("model_overrides must be a mapping")
        if problems:
            raise InputError("train config", "; ".join(problems))


@dataclass
class TrainResult:
    run_dir: Path
    final_checkpoint: Path
    steps: int
    history: list[dict[str, float]]
    model: Any = None  # the trained (unwrapped) module, for callers in the same process


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for 0-based ``step``: linear warm-up over ``warmup_steps``, then cosine to the floor."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def find_latest_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder itself, or the highest ``checkpoints/step_*`` folder of a run folder."""
    path = Path(path)
    if (path / "trainer_state.json").is_file():
        return path
    candidates = sorted((path / "checkpoints").glob("step_*")) if (path / "checkpoints").is_dir() else []
    candidates = [c for c in candidates if (c / "trainer_state.json").is_file()]
    if not candidates:
        raise InputError(path, "no checkpoint to resume from (expected trainer_state.json or checkpoints/step_*)")
    return candidates[-1]


def plot_losses(history: list[dict[str, float]], path: str | Path) -> Path:
    """Loss (and components) against step, as a PNG written atomically."""
    from himbench.plotting import new_figure, save_figure

    fig = new_figure((7, 4))
    ax = fig.subplots()
    steps = [row["step"] for row in history]
    keys = [k for k in history[0] if k.startswith("loss")] if history else []
    for key in keys:
        ax.plot(steps, [row[key] for row in history], label=key.removeprefix("loss/") if "/" in key else key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if keys:
        ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=100)


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (seeds legacy global-state users, e.g. third-party augmenters)
    torch.manual_seed(seed)


def _pick_device(name: str, local_rank: int):
    """The torch device of this process (:func:`himbench.device.resolve_device`); selects it when it is a GPU."""
    import torch

    from himbench.device import resolve_device

    device = torch.device(resolve_device(name, local_rank))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


class _ResumeSampler:
    """Wraps a sampler so that the first ``skip`` indices of its next epoch are left out (the batches a resumed run
    already trained on); later epochs are whole. ``set_epoch`` passes through."""

    def __init__(self, sampler, skip: int) -> None:
        self.sampler, self.skip = sampler, skip

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        skip, self.skip = self.skip, 0
        for position, index in enumerate(self.sampler):
            if position >= skip:
                yield index

    def __len__(self) -> int:
        return len(self.sampler)


def _to_device(batch: dict[str, Any], device) -> dict[str, Any]:
    import torch

    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _loss_module(model):
    import torch

    class LossModule(torch.nn.Module):
        """Routes DDP's forward to ``training_loss`` so its gradient hooks see the whole computation."""

        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, batch):
            return self.inner.training_loss(batch)

    return LossModule(model)


def _write_logs(run_dir: Path, history: list[dict[str, float]]) -> None:
    if not history:
        return
    keys: list[str] = []
    for row in history:
        keys.extend(k for k in row if k not in keys)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(run_dir / "log.csv", text.getvalue())
    atomic_write_text(run_dir / "log.jsonl", "".join(json.dumps(row) + "\n" for row in history))
    plot_losses(history, run_dir / "loss.png")


def _save_training_checkpoint(folder: Path, model, optimizer, cfg: TrainConfig, step: int, epoch: int) -> Path:
    import torch

    from himbench.checkpoints import save_checkpoint

    save_checkpoint(model, folder, cfg.model, extra={"train_step": step})
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)  # tensors, numbers, lists, dicts only: weights_only-loadable
    atomic_write_bytes(folder / "optimizer.pt", buffer.getvalue())
    atomic_write_text(folder / "trainer_state.json", json.dumps({"step": step, "epoch": epoch}) + "\n")
    return folder


def train(cfg: TrainConfig, progress: bool = True) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` (a built shard folder); see the module docstring for outputs."""
    import torch

    cfg.validate()
    previous_threads = torch.get_num_threads()
    try:
        return _train(cfg, progress)
    finally:
        torch.set_num_threads(previous_threads)


def _train(cfg: TrainConfig, progress: bool) -> TrainResult:
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, DistributedSampler
    from tqdm import tqdm

    from himbench.checkpoints import load_weights, save_checkpoint
    from himbench.data import HIMShardDataset, collate_him
    from himbench.registry import create_model, no_weight_decay_names, traits_of

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    distributed = world > 1
    device = _pick_device(cfg.device, local_rank)
    if distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if cfg.threads and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    is_main = rank == 0
    run_dir = Path(cfg.out)

    _seed_everything(cfg.seed)  # identical initial weights on every rank
    try:
        model = create_model(cfg.model, **cfg.model_overrides)
    except KeyError as err:
        raise InputError("--model", str(err.args[0] if err.args else err)) from err
    except (TypeError, ValueError) as err:
        raise InputError("--set", f"invalid model config override ({err})") from err
    model = model.to(device)
    size = cfg.size or int(model.config.input_size)
    dataset = HIMShardDataset(cfg.data, cfg.split, size=size, augment=cfg.augment, seed=cfg.seed)
    base_sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    sampler = _ResumeSampler(base_sampler, 0)
    per_rank = len(base_sampler)
    if per_rank == 0:
        raise InputError(cfg.data, f"split {cfg.split!r} has no samples")
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        collate_fn=collate_him,
        drop_last=per_rank >= cfg.batch_size,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.num_workers > 0,
    )
    # Norms and biases never decay; a model names any other parameters that must not (timm's no_weight_decay()).
    skip_decay = no_weight_decay_names(model)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 or name in skip_decay else decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )

    start_step = 0
    if cfg.init and not cfg.resume:
        # Fine-tuning: the weights only, from a folder of himbench's own layout (model.safetensors + config.json).
        init_folder = Path(cfg.init)
        if not (init_folder / "model.safetensors").is_file():
            raise InputError(init_folder, "no model.safetensors to initialise from (expected a checkpoint folder)")
        load_weights(model, init_folder / "model.safetensors")
    if cfg.resume:
        checkpoint = find_latest_checkpoint(cfg.resume)
        load_weights(model, checkpoint / "model.safetensors")
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location=device, weights_only=True))
        state_path = checkpoint / "trainer_state.json"
        try:
            start_step = int(read_json(state_path, max_bytes=1 << 20)["step"])
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(state_path, f"no valid 'step' ({err})") from err

    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "train_config.json", json.dumps(asdict(cfg), indent=2) + "\n")
    history: list[dict[str, float]] = []
    if cfg.resume and is_main and (run_dir / "log.jsonl").is_file():
        log_path = run_dir / "log.jsonl"
        text = read_file_bytes(log_path, max_bytes=256 << 20).decode("utf-8", errors="replace")
        rows = [parse_json(line, log_path, max_depth=2) for line in text.splitlines() if line.strip()]
        history = [row for row in rows if isinstance(row, dict) and isinstance(row.get("step"), int | float)
                   and row["step"] <= start_step]

    wrapped = _loss_module(model)
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        # Models whose every parameter takes part in every loss say so (find_unused_parameters = False) and skip
        # DDP's extra graph walk; the default stays safe for models that do not.
        wrapped = DistributedDataParallel(
            wrapped,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=traits_of(model).find_unused_parameters,
        )
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    model.train()
    batches_per_epoch = max(1, len(loader))
    step = start_step
    epoch = step // batches_per_epoch
    sampler.skip = (step % batches_per_epoch) * cfg.batch_size  # mid-epoch resume: the batches already trained on
    sums: dict[str, float] = {}
    count = 0
    tick = time.perf_counter()
    # Pass `disable` only to switch the bar off, so that TQDM_DISABLE in the environment still works otherwise.
    quiet = {} if progress and is_main else {"disable": True}
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.model}", **quiet)
    while step < cfg.steps:
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        for batch in loader:
            if step >= cfg.steps:
                break
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = _to_device(batch, device)
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
                losses = wrapped(batch)
            loss = losses["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss {loss.item()} at step {step} (batch ids {batch['ids']})")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            step += 1
            count += 1
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                elapsed = time.perf_counter() - tick
                row = {"step": step, "epoch": epoch, "lr": lr, "steps_per_s": count / max(elapsed, 1e-9)}
                row.update({("loss" if k == "loss" else f"loss/{k}"): v / count for k, v in sums.items()})
                history.append(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}")
                sums, count, tick = {}, 0, time.perf_counter()
                if is_main:
                    _write_logs(run_dir, history)
            if cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0 and step < cfg.steps and is_main:
                _save_training_checkpoint(
                    run_dir / "checkpoints" / f"step_{step:07d}", model, optimizer, cfg, step, epoch
                )
        else:
            epoch += 1
    bar.close()

    final = run_dir / "final"
    if is_main:
        _save_training_checkpoint(run_dir / "checkpoints" / f"step_{step:07d}", model, optimizer, cfg, step, epoch)
        save_checkpoint(model, final, cfg.model, extra={"train_step": step, "train_config": asdict(cfg)})
        _write_logs(run_dir, history)
    if distributed:
        dist.barrier()
    return TrainResult(run_dir=run_dir, final_checkpoint=final, steps=step, history=history, model=model)
