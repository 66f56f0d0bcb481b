"""Score one or more checkpoints of a model on a built split: IMQ/RQ/MQ only, no latency probe, one JSON line each.

Used to compare training recipes quickly (the leaderboard's `himbench bench` also times every method, which a recipe
search does not need). Each checkpoint is scored on the same images in the same way as `himbench bench`.

    python benchmarks/score_checkpoints.py --model e2ehim-tiny --data data/him-test-640 runs/a/final runs/b/final
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoint folders (model.safetensors + config.json)")
    parser.add_argument("--model", default="e2ehim-tiny", help="method / registered model name")
    parser.add_argument("--data", required=True, help="built shard folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=JSON", help="method option")
    args = parser.parse_args()

    from himbench.bench.harness import score_method
    from himbench.methods import create_method

    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    keys = ("IMQ_mad@0.5", "RQ@0.5", "MQ_mad@0.5", "IMQ_mse@0.5", "TP@0.5", "FP@0.5", "FN@0.5", "IMQ_mad@0.75")
    for checkpoint in args.checkpoints:
        def build(checkpoint=checkpoint):
            return create_method(args.model, checkpoint=checkpoint, device=args.device, **options)

        result = score_method(build, args.data, args.split, args.device, args.limit)
        row = {"checkpoint": checkpoint, "n_images": result.n_images, "failures": len(result.failures)}
        row.update({k: round(float(result.metrics[k]), 3) for k in keys if k in result.metrics})
        row["latency_ms"] = round(result.mean_latency_ms, 1)
        print(json.dumps(row), flush=True)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
