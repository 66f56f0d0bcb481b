"""Learning sanity check: can each trainable model memorise a handful of images?

A model that cannot overfit 8 images has a broken loss, matcher or data path, whatever its leaderboard row says. This
script builds N embedded images at a small size, trains each model on exactly those images (no augmentation), then
scores it on the same images with the instance metrics, as `himbench bench` would (mask-guided models get the ground
truth masks, binarised at 0.5). It prints one JSON line per model and writes them all to --out.

    python benchmarks/overfit.py                                     # e2ehim-tiny, seg-tiny, mask-refine-tiny
    python benchmarks/overfit.py --models e2ehim-tiny --steps 600 --size 128

Exit status 1 when a model listed in --require misses its IMQ_mad@0.5 floor (default: e2ehim-tiny >= 75).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

# The method that scores each trainable model (a mask-guided refiner is scored at ground-truth masks).
SCORED_AS = {"e2ehim-tiny": "e2ehim-tiny", "seg-tiny": "seg-tiny", "mask-refine-tiny": "mask-refine"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="e2ehim-tiny,seg-tiny,mask-refine-tiny", help="comma-separated models")
    parser.add_argument("--images", type=int, default=8, help="images to memorise")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (built and trained at it)")
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps per model")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--require", action="append", default=["e2ehim-tiny=75"], metavar="MODEL=IMQ",
                        help="IMQ_mad@0.5 floor of a model (repeatable)")
    parser.add_argument("--work", default=None, help="folder for the build and the runs (default: a temporary one)")
    parser.add_argument("--out", default="benchmarks/results/overfit.json", help="JSON output path")
    args = parser.parse_args()

    from himbench.bench.harness import score_method
    from himbench.build_config import BuildConfig
    from himbench.methods import create_method
    from himbench.synthesis import build_dataset
    from himbench.training import TrainConfig, train

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="himbench-overfit-"))
    data = work / "data"
    if not (data / "data").is_dir():
        build_dataset(BuildConfig(splits={"train": args.images}, width=args.size, height=args.size, seed=args.seed),
                      data, workers=1, progress=False)
    floors = {k: float(v) for k, v in (item.split("=", 1) for item in args.require)}
    rows, failed = [], []
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        start = time.perf_counter()
        config = TrainConfig(
            model=model, data=str(data), out=str(work / model), steps=args.steps, batch_size=args.batch_size,
            lr=args.lr, warmup_steps=min(50, args.steps // 10), size=args.size, seed=args.seed, augment=False,
            log_every=max(1, args.steps // 10), checkpoint_every=0, threads=args.threads, device="cpu",
            model_overrides={"input_size": args.size},
        )
        result = train(config, progress=False)
        seconds = time.perf_counter() - start
        method = SCORED_AS.get(model, model)
        scored = score_method(
            lambda method=method, result=result: create_method(method, checkpoint=str(result.final_checkpoint),
                                                               device="cpu"),
            str(data),
            split="train",
        )
        metrics = scored.metrics
        row = {
            "model": model,
            "scored_as": method,
            "images": args.images,
            "size": args.size,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "train_seconds": round(seconds, 1),
            "loss_first": round(result.history[0]["loss"], 4) if result.history else None,
            "loss_last": round(result.history[-1]["loss"], 4) if result.history else None,
            **{k: round(float(metrics[k]), 2) for k in ("IMQ_mad@0.5", "RQ@0.5", "MQ_mad@0.5", "IMQ_mse@0.5")},
        }
        if model in floors:
            row["floor"] = floors[model]
            row["passed"] = row["IMQ_mad@0.5"] >= floors[model]
            if not row["passed"]:
                failed.append(model)
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Rows of other models from earlier runs stay (one file for every model), each with the command that made it.
    command = "python " + " ".join(sys.argv)
    kept = []
    if out.is_file():
        kept = [r for r in json.loads(out.read_text()).get("rows", []) if r["model"] not in {r["model"] for r in rows}]
    rows = kept + [dict(row, command=command) for row in rows]
    out.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    if failed:
        print(f"below the floor: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
