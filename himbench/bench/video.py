"""``himbench bench`` on video (issue 23): every method frame by frame over the clips of a ``build-dataset --video``
folder or a V-HIM folder, with and without temporal smoothing, scored per clip.

Each (method, smoothing) pair is one run: :func:`himbench.predictions.video_writer.predict_video` writes the
prediction folder (automatic methods keep identities by IoU matching between frames; mask-guided ones track the
first frame's ground-truth masks, an oracle seed, or read masks from disk), then
:func:`himbench.evaluation.video.evaluate_video_folder` scores it (one matching per clip, per-frame errors and IMQ
averaged per clip, dtSSD and MESSDdt in Erofeev's and MaGGIe's conventions, identity switches). A row of the video
leaderboard CSV (``leaderboard/video.csv``) holds the summary and the cost: wall-clock milliseconds per frame of the
whole per-frame pipeline (prediction, tracking, smoothing, writing), which is what a user waits for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["VideoBenchConfig", "run_folder", "run_video_bench", "video_label"]


@dataclass(frozen=True)
class VideoBenchConfig:
    """Everything a video benchmark run depends on (saved as JSON beside its results)."""

    data: str
    methods: tuple[str, ...]
    split: str | None = None
    smoothing: tuple[float, ...] = (0.0,)  # one row per strength: 0 is the plain per-frame baseline
    guidance: str | None = None  # None: first-frame for mask-guided methods, none for automatic ones
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str | None = None
    warp: str = "correct"  # MESSDdt warp of the MaGGIe-convention columns (himbench.metrics.temporal)


def video_label(name: str, guidance: str, smoothing: float) -> str:
    """The leaderboard name of a run: ``mask-refine@first-frame+smooth0.5``; automatic methods carry no guidance."""
    label = name if guidance == "none" else f"{name}@{guidance}"
    return label if not smoothing else f"{label}+smooth{smoothing:g}"


def run_video_bench(
    config: VideoBenchConfig,
    out_dir: str | Path,
    progress: bool = False,
    on_error: Callable[[str], None] | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """Run every method of ``config`` at every smoothing strength; returns the environment and the CSV rows.

    Predictions go to ``RUN/predictions/<label>``, each evaluation to ``RUN/eval/<label>`` and the resolved config
    to ``RUN/bench_config.json``, ``RUN`` being :func:`run_folder`; a run whose prediction folders exist already
    is refused before any method runs.
    With ``on_error``, a method that cannot be built or run on these clips is reported there and skipped."""
    from himbench.bench.environment import detect_environment
    from himbench.evaluation.video import evaluate_video_folder, write_video_evaluation
    from himbench.io import InputError, atomic_write_text
    from himbench.methods import create_method, resolve_device
    from himbench.predictions.video_writer import predict_video, resolve_guidance
    from himbench.registry import is_mask_guided

    device = resolve_device(config.device)
    env = detect_environment(device)
    date = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    out = run_folder(out_dir, config.data, config.split, env.slug)
    # Each method's guidance is resolved once; a method that takes none of the asked kind fails its own runs only.
    plan = []
    for name in config.methods:
        try:
            guidance, problem = resolve_guidance(config.guidance, is_mask_guided(name)), None
        except (KeyError, ValueError) as err:
            guidance, problem = "none", err
        plan.extend((name, strength, guidance, problem) for strength in config.smoothing)
    taken = [str(path) for name, strength, guidance, _ in plan
             if (path := out / "predictions" / video_label(name, guidance, strength)).exists()]
    if taken:  # checked before any method runs: an earlier run's predictions are never overwritten
        raise InputError(taken[0], f"holds an earlier run's predictions ({len(taken)} of this run's folders exist); "
                                   "give another --out or remove them")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "bench_config.json", json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    rows: list[dict[str, Any]] = []
    for name, strength, guidance, problem in plan:
        label = video_label(name, guidance, strength)
        try:
            if problem is not None:
                raise problem
            method = create_method(name, device=device, **config.method_options.get(name, {}))
            pred_dir = out / "predictions" / label
            tic = time.perf_counter()
            written = predict_video(method, config.data, pred_dir, split=config.split, guidance=guidance,
                                    smoothing=strength, progress=progress)
            seconds = time.perf_counter() - tic
            evaluation = evaluate_video_folder(pred_dir, config.data, split=config.split, warp=config.warp,
                                               progress=progress)
        except (InputError, KeyError, TypeError, ValueError, OSError) as err:
            if on_error is None:
                raise
            on_error(f"{label}: not benchmarked ({type(err).__name__}: {err})")
            continue
        write_video_evaluation(evaluation, out / "eval" / label)
        description = method.describe()
        rows.append({
            "method": label,
            "data": Path(config.data).resolve().name,
            "split": evaluation.config.get("split") or config.split or "",
            "environment": env.slug,
            "guidance": ("oracle:" if guidance == "first-frame" else "") + guidance,
            "smoothing": strength,
            "trained": description["trained"],
            "params": description["params"],
            "n_clips": written["clips"],
            "n_frames": written["frames"],
            "failures": len(evaluation.problems),
            "latency_ms": 1000.0 * seconds / max(1, written["frames"]),
            "device_name": env.device_name,
            "torch_version": env.torch_version,
            "date": date,
            "spec": json.dumps(description["spec"], sort_keys=True),
            **evaluation.summary,
        })
    return env, rows


def run_folder(out_dir: str | Path, data: str, split: str | None, environment: str) -> Path:
    """Where one run's predictions and evaluations go: ``OUT/video_<data>_<split>_<environment>``, so runs on
    other clips or machines never meet (``_all`` when the split is the ground truth's only one)."""
    from himbench.io import safe_name

    name = f"video_{Path(data).resolve().name}_{split or 'all'}_{environment}"
    return Path(out_dir) / safe_name(name, out_dir, "run folder name")
