"""`himbench train`: train a registered model on built shards (thin shell over himbench.training.train)."""

from __future__ import annotations

import json
import os

import click

from himbench.cli.errors import Command
from himbench.cli.options import device_option, threads_option

__all__ = ["command"]

MAX_TRAIN_SIZE = 8192  # mirrors himbench.training.MAX_TRAIN_SIZE (not imported: `--help` must not import torch)


@click.command("train", cls=Command)
@click.option(
    "--model",
    "model_name",
    default="e2ehim-tiny",
    show_default=True,
    help="Registered model name (see `himbench models`).",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Built shard folder (from `himbench build-dataset`), containing data/<split>-*.parquet.",
)
@click.option("--split", default="train", show_default=True, help="Split of --data to train on.")
@click.option(
    "--out",
    "out_dir",
    default="runs/e2ehim-tiny",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Run folder: logs, loss plot, checkpoints/step_*, final/ (model.safetensors + config.json).",
)
@click.option("--steps", default=1000, show_default=True, type=click.IntRange(min=1), help="Optimizer steps in total.")
@click.option(
    "--batch-size", default=4, show_default=True, type=click.IntRange(min=1), help="Images per step per process."
)
@click.option(
    "--lr",
    default=5e-4,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Peak AdamW learning rate.",
)
@click.option(
    "--weight-decay",
    default=0.05,
    show_default=True,
    type=click.FloatRange(min=0),
    help="AdamW weight decay (not on norms/biases).",
)
@click.option(
    "--warmup-steps",
    default=50,
    show_default=True,
    type=click.IntRange(min=0),
    help="Linear warm-up steps before the cosine decay.",
)
@click.option(
    "--size",
    default=None,
    type=click.IntRange(min=32, max=MAX_TRAIN_SIZE),
    help="Square training size in pixels (letterboxed); default: the model's input size.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for weights, data order and augmentation.")
@click.option(
    "--workers", default=0, show_default=True, type=click.IntRange(min=0), help="DataLoader worker processes."
)
@device_option()
@threads_option(
    "CPU threads for torch (CPU training). On a machine shared with other jobs, 1 is often several times "
    "faster than more, because OpenMP threads wait for each other."
)
@click.option("--no-amp", is_flag=True, help="Disable mixed precision on CUDA (it is never used on CPU).")
@click.option("--no-augment", is_flag=True, help="Disable random flips and brightness/contrast jitter.")
@click.option("--log-every", default=10, show_default=True, type=click.IntRange(min=1), help="Steps between log rows.")
@click.option(
    "--checkpoint-every",
    default=500,
    show_default=True,
    type=click.IntRange(min=0),
    help="Steps between checkpoints (0: only the final one).",
)
@click.option(
    "--resume",
    default=None,
    type=click.Path(exists=True),
    help="Checkpoint folder or run folder (its latest checkpoint) to continue from.",
)
@click.option(
    "--init",
    "init",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="Checkpoint folder whose weights start the run (fine-tuning: new optimizer, schedule from step 0). "
    "The model config (--set) must give the same shapes. Ignored with --resume.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=JSON",
    help="Model config override, e.g. --set input_size=128 --set guidance.num_queries=10 (repeatable).",
)
def command(
    model_name,
    data,
    split,
    out_dir,
    steps,
    batch_size,
    lr,
    weight_decay,
    warmup_steps,
    size,
    seed,
    workers,
    device,
    threads,
    no_amp,
    no_augment,
    log_every,
    checkpoint_every,
    resume,
    init,
    overrides,
) -> None:
    """Train MODEL on built HIM shards. Multi-GPU / multi-node: launch with
    `torchrun --nproc_per_node N $(which himbench) train ...` (DistributedDataParallel; gloo on CPU, nccl on GPU)."""
    from himbench.training import TrainConfig, train

    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
        raise click.BadParameter(f"{device!r} is not one of auto, cpu, cuda, cuda:N", param_hint="--device")
    config = TrainConfig(
        model=model_name,
        data=data,
        out=out_dir,
        split=split,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps,
        size=size,
        seed=seed,
        num_workers=workers,
        device=device,
        amp=not no_amp,
        augment=not no_augment,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
        resume=resume,
        init=init,
        threads=threads,
        model_overrides=_parse_overrides(overrides),
    )
    result = train(config)  # an InputError (bad data folder, model name, override, device, checkpoint) exits 2
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if result.history:
        last = result.history[-1]
        click.echo(f"step {result.steps}: loss {last['loss']:.4f} ({last['steps_per_s']:.2f} steps/s)")
    click.echo(f"final checkpoint: {result.final_checkpoint}")


def _parse_overrides(items: tuple[str, ...]) -> dict:
    """``a.b=JSON`` strings -> nested dict; bare words that are not JSON are kept as strings."""
    overrides: dict = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            value = raw
        node = overrides
        parts = key.split(".")
        if not all(parts):
            raise click.BadParameter(f"{item!r} has an empty key", param_hint="--set")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise click.BadParameter(f"{item!r}: {part!r} was already set to a value", param_hint="--set")
            node = child
        node[parts[-1]] = value
    return overrides
