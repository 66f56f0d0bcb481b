"""Cost of the field's released models in himbench: forward latency and peak memory at 640 px, 1..10 people.

Compares ``e2ehim-official`` (the authors' E2E-HIM network, one pass for all people) and ``mgm`` (the authors'
MGMatting, one pass per person, given the probe's masks) with himbench's own ``e2ehim-tiny`` and the two-stage
``seg-refine`` pipeline, on the same synthetic probe images (:func:`himbench.bench.cost.synthetic_probe`). Latency
does not depend on the weight values, so the released models run with random weights saved as a himbench checkpoint
and loaded through the same path as imported authors' weights (the real files cannot be downloaded on this machine).

Each method's latency is the fastest of ``--repeats`` timed runs after ``--warmup`` untimed ones (the least disturbed
by other load); peak memory is the resident-set peak over the method's whole run minus the resident size before it
was built (:class:`himbench.bench.cost.MemoryProbe`), so it includes the weights.

    python benchmarks/bench_released.py                     # CPU, 2 threads, counts 1..10
    python benchmarks/bench_released.py --counts 1,6,10 --repeats 1
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import warnings
from pathlib import Path

# methods whose network is a released model (they refuse to run without a checkpoint) -> that model
RELEASED_MODEL_OF = {"e2ehim-official": "e2ehim-official", "mgm": "mgm", "seg-mgm": "mgm"}


def _random_checkpoint(model_name: str, folder: Path) -> str:
    """Random weights of a registered model saved as a himbench checkpoint (loaded like imported weights)."""
    from himbench.checkpoints import save_checkpoint
    from himbench.registry import create_model

    return str(save_checkpoint(create_model(model_name), folder / model_name, model_name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="e2ehim-official,mgm,e2ehim-tiny,seg-refine",
                        help="comma-separated methods (the first is the reference of the ratios)")
    parser.add_argument("--counts", default="1,2,3,4,5,6,7,8,9,10", help="people per probe image")
    parser.add_argument("--size", type=int, default=640, help="probe image side in pixels")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per count (the fastest is kept)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per count")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", default="benchmarks/results/released.json", help="JSON output path")
    args = parser.parse_args()

    import torch

    from himbench.bench.cost import MemoryProbe, latency_vs_instances
    from himbench.bench.environment import detect_environment
    from himbench.io import atomic_write_text
    from himbench.methods import create_method

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    counts = [int(c) for c in args.counts.split(",")]
    names = [m for m in args.methods.split(",") if m]
    env = detect_environment("cpu")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            options: dict = {"device": "cpu"}
            released = RELEASED_MODEL_OF.get(name)  # needs the authors' weights: random ones, saved as a checkpoint
            if released is not None:
                options["checkpoint"] = _random_checkpoint(released, Path(tmp))
            gc.collect()
            memory = MemoryProbe("cpu").start()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*random weights.*")
                method = create_method(name, **options)
            print(f"{name}: {method.num_parameters() / 1e6:.2f} M parameters", flush=True)
            curve = latency_vs_instances(method.predict_for_timing, counts, args.size, args.repeats, args.warmup)
            results[name] = {
                "params": method.num_parameters(),
                "mask_guided": method.needs_masks,
                "latency_ms": {str(n): round(1000 * s, 1) for n, s in curve.items()},
                "peak_mem_mb": round(memory.peak_mb(), 1),
                "peak_mem_kind": memory.kind,
            }
            print(f"  latency ms {results[name]['latency_ms']}  peak memory {results[name]['peak_mem_mb']} MB",
                  flush=True)
            del method
            gc.collect()

    reference = names[0]
    header = f"{'people':>6} " + " ".join(f"{n:>16}" for n in names)
    print(f"\nmilliseconds per {args.size} px image (CPU, {args.threads} threads)\n{header}")
    for n in counts:
        row = " ".join(f"{results[m]['latency_ms'][str(n)]:>16.1f}" for m in names)
        print(f"{n:>6} {row}")
    ratios = {
        m: {str(n): round(results[m]["latency_ms"][str(n)] / results[reference]["latency_ms"][str(n)], 2)
            for n in counts}
        for m in names[1:]
    }
    print(f"\nlatency / {reference} latency: {json.dumps(ratios)}")
    record = {
        "what": "forward latency (ms, fastest of repeats) and peak memory of released and himbench models",
        "command": "python benchmarks/bench_released.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "environment": env.slug,
        "size": args.size,
        "threads": args.threads,
        "methods": results,
        f"ratio_to_{reference}": ratios,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
