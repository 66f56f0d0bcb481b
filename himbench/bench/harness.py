"""Run methods on the same data and record accuracy and cost (``himbench bench``).

Accuracy is scored in memory: every prediction is rounded to 8 bits (as saving it in the HIM-2K PNG layout would),
then goes straight to :func:`himbench.metrics.evaluate_instances` against the shard's ground truth and into an
:class:`~himbench.metrics.IMQAccumulator`. No prediction files are written; the numbers are those
``himbench evaluate`` gives for the same predictions saved as PNGs. A method that raises on an image is reported
and the image counts as an empty prediction (all its people missed); the run carries on.

Mask-guided methods get their masks from :func:`himbench.guidance.guidance_masks` using the method's own guidance
config (same seed -> the same masks for every method). Cost: see :mod:`himbench.bench.cost`.

Published protocols (see :mod:`himbench.metrics.paper_units` and the README's "Compare with the papers"):

- **M-HIM2K mask sets** (``BenchConfig.mask_sets``, from :func:`find_mask_sets`): a folder in the released M-HIM2K
  layout (``<root>/masks_matched_<model>/<subset>/<stem>/<k>.png``, one folder per Mask R-CNN model) is evaluated
  once per set; every mask-guided method gets one row per set (``mask-cf@r50_c4_3x``) and a row with the mean over
  sets (``mask-cf@m-him2k``) whose ``<metric>_std`` columns hold the standard deviation over sets (ddof 0), as
  MaGGIe's Table 5 prints mean (std). Methods that take no masks are run once.
- **Image-size protocols** (``BenchConfig.size_protocol``, :data:`SIZE_PROTOCOLS`): the image (and the masks) are
  resized before ``predict`` as the paper's test code did, and the mattes resized back, so scoring is at the
  original size: ``maggie`` = short side 576 (``ResizeShort(576)``, bilinear image, nearest masks); ``instmatt`` =
  long side at most 1280 (``infer.py --max-side`` default, downscale only). The protocol is recorded per row. The
  padding to a multiple of 64 (MaGGIe) / 32 (InstMatt) is the network's business and is not applied here.
- **MaGGIe units** (``maggie_*`` columns): every ground-truth instance of an image is scored against the prediction
  paired with it, all instances handed over together, with :class:`~himbench.metrics.paper_units.MaggieAccumulator`.
  The pairing is by index for a mask-guided method handed as many masks as there are people (M-HIM2K masks are
  matched to the ground truth by file name, as in MaGGIe's loader), otherwise the Hungarian IoU match; an unmatched
  person is scored against an empty matte.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from himbench.bench.cost import MemoryProbe, latency_vs_instances, timed
from himbench.bench.environment import Environment, detect_environment
from himbench.bench.results import LATENCY_COUNTS
from himbench.metrics.table import metric_key

__all__ = [
    "SIZE_PROTOCOLS",
    "BenchConfig",
    "MethodResult",
    "SizeProtocol",
    "CLASSIC_PREFIX",
    "bench_method",
    "classic_columns",
    "find_mask_sets",
    "maggie_pairs",
    "mean_std_row",
    "method_label",
    "quantise_8bit",
    "result_row",
    "run_bench",
    "score_method",
]

MASK_SET_PREFIX = "masks_matched_"
# Column prefix of a classic benchmark's own errors, per convention (himbench.metrics.classic.CONVENTIONS); the
# same prefixes as himbench.leaderboard.published.CLASSIC_MEASURED_COLUMNS, so measured rows join published tables.
CLASSIC_PREFIX: dict[str, str] = {c: metric_key(c, "SAD").removesuffix("SAD") for c in ("p3m", "dim")}
TRIMAP_GUIDANCE = "trimap"  # guidance of a method that solved on the benchmark's own trimap
ORACLE_PREFIX = "oracle:"  # guidance made from the ground truth of a benchmark (not a built data set's spec)


@dataclass(frozen=True)
class SizeProtocol:
    """How a paper's test code sized the image before its network saw it."""

    name: str
    short_side: int | None = None  # resize so the short side is exactly this (up or down)
    max_long_side: int | None = None  # shrink so the long side is at most this (never enlarge)
    source: str = ""

    def size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) the network sees, rounded down as the papers' ``int(side * ratio)``."""
        ratio = 1.0
        if self.short_side:
            ratio = self.short_side / min(height, width)
        elif self.max_long_side and max(height, width) > self.max_long_side:
            ratio = self.max_long_side / max(height, width)
        if ratio == 1.0:
            return height, width
        return max(1, int(height * ratio)), max(1, int(width * ratio))

    def predict(self, predict: Callable[..., Any], image: np.ndarray, masks: np.ndarray | None) -> Any:
        """``predict(image, masks)`` on the resized input, mattes resized back to the image's size (bilinear)."""
        import cv2

        from himbench.methods import Prediction

        height, width = image.shape[:2]
        new_h, new_w = self.size(height, width)
        if (new_h, new_w) == (height, width):
            return predict(image, masks)
        small = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        small_masks = None
        if masks is not None:
            small_masks = np.stack([cv2.resize(m.astype(np.uint8), (new_w, new_h), interpolation=cv2.INTER_NEAREST)
                                    for m in masks]) > 0 if len(masks) else np.zeros((0, new_h, new_w), dtype=bool)
        prediction = predict(small, small_masks)
        alphas = np.asarray(prediction.alphas, dtype=np.float32)
        back = (np.stack([cv2.resize(a, (width, height), interpolation=cv2.INTER_LINEAR) for a in alphas])
                if len(alphas) else np.zeros((0, height, width), dtype=np.float32))
        return Prediction(np.clip(back, 0.0, 1.0), prediction.scores)


SIZE_PROTOCOLS: dict[str, SizeProtocol | None] = {
    "native": None,
    "maggie": SizeProtocol("maggie", short_side=576, source="MaGGIe configs/maggie_image.yaml short_size: 576"),
    "instmatt": SizeProtocol("instmatt", max_long_side=1280, source="InstMatt infer.py --max-side 1280"),
}


def find_mask_sets(root: str | Path) -> tuple[tuple[str, str], ...]:
    """The M-HIM2K mask sets under ``root``: ``(model, path)`` for every ``masks_matched_<model>/`` folder, sorted;
    empty when ``root`` is a single mask set (``<root>/<split>/<stem>/``)."""
    root = Path(root)
    if not root.is_dir():
        return ()
    return tuple(
        (entry.name[len(MASK_SET_PREFIX):], str(entry))
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.is_dir() and entry.name.startswith(MASK_SET_PREFIX) and len(entry.name) > len(MASK_SET_PREFIX)
    )


def maggie_pairs(pred: np.ndarray, gt: np.ndarray, by_index: bool) -> np.ndarray:
    """The prediction paired with each ground-truth instance (G, H, W): by index when ``by_index`` and the counts
    agree, else the Hungarian IoU match (pairs with IoU 0 count as unmatched); unmatched people get an empty matte."""
    if by_index and len(pred) == len(gt):
        return np.asarray(pred, dtype=np.float32)
    from himbench.metrics import match_instances

    paired = np.zeros(gt.shape, dtype=np.float32)
    if len(pred) and len(gt):
        matching = match_instances(np.asarray(pred) > 0, np.asarray(gt) > 0)
        for p, g, iou in zip(matching.pred_index, matching.gt_index, matching.iou, strict=True):
            if iou > 0:
                paired[g] = pred[p]
    return paired


@dataclass(frozen=True)
class BenchConfig:
    """Everything a benchmark run depends on (saved as JSON beside its results)."""

    data: str
    methods: tuple[str, ...]
    split: str = "test"
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # method name -> create_method kwargs
    limit: int | None = None  # score only the first N images of the split
    device: str | None = None  # None: cuda when available
    latency_counts: tuple[int, ...] = LATENCY_COUNTS
    latency_size: int = 640
    latency_repeats: int = 3
    warmup: int = 1
    seed: int = 0
    mask_sets: tuple[tuple[str, str], ...] = ()  # (model, folder) of M-HIM2K mask sets: one run per set
    size_protocol: str = "native"  # a key of SIZE_PROTOCOLS
    paper_metrics: bool = True  # also score in MaGGIe's units (maggie_* columns)
    bootstrap: int = 0  # resamples for the <metric>_lo/_hi interval columns (0: none); himbench.evaluation.breakdown
    breakdown: tuple[str, ...] = ()  # strata kept per method (MethodResult.breakdown)


@dataclass
class MethodResult:
    """One method's benchmark outcome, as data (formatting happens in the CLI / leaderboard)."""

    label: str
    description: dict[str, Any]
    metrics: dict[str, float]
    n_images: int
    failures: list[str]
    latency_s: list[float]
    latency_vs_instances: dict[int, float]
    peak_mem_mb: float
    peak_mem_kind: str
    probe_error: str = ""  # why the latency-versus-instances curve is missing, if it is
    records: list[dict[str, Any]] = field(default_factory=list)  # per image, when bootstrap or breakdown asks
    breakdown: dict[str, Any] | None = None

    @property
    def mean_latency_ms(self) -> float:
        return 1000.0 * float(np.mean(self.latency_s)) if self.latency_s else float("nan")


def quantise_8bit(alphas: np.ndarray) -> np.ndarray:
    """Round mattes to the 8-bit levels a PNG stores (so values below 0.5/255 become exactly 0)."""
    return (np.rint(np.clip(alphas, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def method_label(name: str, guidance_label: str) -> str:
    """``mask-cf`` for unperturbed ground-truth guidance, ``mask-cf@gt+erode`` otherwise."""
    if guidance_label and guidance_label != "gt":
        return f"{name}@{guidance_label}"
    return name


def bench_method(
    build: Callable[[], Any],
    samples: Iterable[Any],
    config: BenchConfig,
    progress: Callable[[Iterable, str], Iterable] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> MethodResult:
    """Build one method (inside the memory probe), score it on ``samples`` (HIMSample-like: id, image, alphas),
    then probe its latency versus instance count."""
    from himbench.evaluation.breakdown import breakdown, image_record
    from himbench.guidance import guidance_masks
    from himbench.metrics import IMQAccumulator, evaluate_instances
    from himbench.metrics.classic import ClassicStat, classic_errors
    from himbench.metrics.paper_units import MaggieAccumulator
    from himbench.predictions.reader import merge_instances

    if config.size_protocol not in SIZE_PROTOCOLS:
        raise ValueError(f"unknown size protocol {config.size_protocol!r}; choose from {', '.join(SIZE_PROTOCOLS)}")
    protocol = SIZE_PROTOCOLS[config.size_protocol]
    device = config.device or "cpu"
    gc.collect()
    import torch

    torch.manual_seed(config.seed)  # untrained weights and any sampling are the same on every run
    memory = MemoryProbe(device).start()
    method = build()
    device = method.device
    accumulator = IMQAccumulator()
    paper = MaggieAccumulator()
    predict = method.predict if protocol is None else partial(protocol.predict, method.predict)
    latencies: list[float] = []
    failures: list[str] = []
    count = 0
    classic = ClassicStat()
    conventions: set[str] = set()
    used_trimap = used_masks = False
    takes_trimap = method.takes_trimap
    iterator = progress(samples, method.name) if progress else samples
    warmed = False
    records: list[dict[str, Any]] = []
    for sample in iterator:
        count += 1
        empty = np.zeros((0, *sample.image.shape[:2]), dtype=np.float32)
        trimap = getattr(sample, "trimap", None)
        try:
            if takes_trimap and trimap is not None:  # the benchmark's own trimap (no resizing: solved at full size)
                masks, run = None, partial(method.predict_with_trimap, sample.image, trimap)
                used_trimap = True
            else:
                masks = (guidance_masks(method.guidance, sample.id, sample.alphas, config.split)
                         if method.needs_masks else None)
                run = partial(predict, sample.image, masks)
                used_masks = used_masks or masks is not None
            if not warmed:  # first call pays one-off costs (JIT, cuDNN autotune): keep it out of the mean
                for _ in range(config.warmup):
                    run()
                warmed = True
            prediction, seconds = timed(run, device)
            latencies.append(seconds)
            pred_alphas = quantise_8bit(prediction.alphas)
        except Exception as err:  # one bad image must not end the benchmark
            message = f"{sample.id}: {method.name} failed ({type(err).__name__}: {err})"
            failures.append(message)
            if on_error:
                on_error(message)
            pred_alphas = empty
            masks = None
        stats = evaluate_instances(pred_alphas, sample.alphas)
        accumulator += stats
        if config.bootstrap or config.breakdown:  # per-image records for the intervals and strata
            records.append(image_record(sample.id, stats, accumulator.thresholds, sample.alphas,
                                        getattr(sample, "occlusion", None)))
        convention = getattr(sample, "convention", "")
        if convention:  # a classic benchmark: its own errors of the merged matte
            conventions.add(convention)
            merged = merge_instances(pred_alphas, sample.image.shape[:2])
            classic.update(classic_errors(merged, sample.alphas[0], trimap, convention))
        if config.paper_metrics:
            by_index = masks is not None and len(masks) == len(sample.alphas)
            paper.add(maggie_pairs(pred_alphas, sample.alphas, by_index), sample.alphas)
    try:
        curve = latency_vs_instances(
            method.predict_for_timing,
            config.latency_counts,
            config.latency_size,
            config.latency_repeats,
            config.warmup,
            device,
            config.seed,
        )
    except Exception as err:  # the accuracy numbers still stand without the latency curve
        probe_error = f"latency probe: {method.name} failed ({type(err).__name__}: {err})"
        if on_error:
            on_error(probe_error)
        curve = {}
    else:
        probe_error = ""
    peak = memory.peak_mb()
    description = method.describe()
    del method
    gc.collect()
    label = method_label(description["name"], description["guidance"])
    if used_trimap and not used_masks:
        description["guidance"] = TRIMAP_GUIDANCE
        label = f"{description['name']}@{TRIMAP_GUIDANCE}"
    elif used_masks and conventions:  # masks from the very ground truth being scored: an oracle first stage
        description["guidance"] = ORACLE_PREFIX + description["guidance"]
    return MethodResult(
        label=label,
        description=description,
        metrics=accumulator.summary() | (paper.summary() if config.paper_metrics else {})
        | classic_columns(classic, conventions),
        n_images=count,
        failures=failures,
        latency_s=latencies,
        latency_vs_instances=curve,
        peak_mem_mb=peak,
        peak_mem_kind=memory.kind,
        probe_error=probe_error,
        records=records,
        breakdown=breakdown(records, config.breakdown, gt_kind=_data_kind(config), resamples=config.bootstrap,
                            seed=config.seed) if config.breakdown else None,
    )


def score_method(
    build: Callable[[], Any], data: str, split: str = "test", device: str = "cpu", limit: int | None = None
) -> MethodResult:
    """Accuracy only: :func:`bench_method` on ``split`` of ``data`` (shards or a HIM-2K folder) without the latency
    probe or MaGGIe's units, for quick comparisons of checkpoints and recipes (``benchmarks/overfit.py``,
    ``benchmarks/score_checkpoints.py``)."""
    config = BenchConfig(data=data, methods=(), split=split, device=device, limit=limit, latency_counts=(),
                         paper_metrics=False)
    return bench_method(build, _samples(config), config)


def result_row(result: MethodResult, config: BenchConfig, env: Environment, date: str) -> dict[str, Any]:
    """The leaderboard CSV row of one method result (columns: :mod:`himbench.bench.results`)."""
    row: dict[str, Any] = {
        "method": result.label,
        "data": Path(config.data).resolve().name,
        "split": config.split,
        "environment": env.slug,
        "guidance": result.description["guidance"],
        "trained": result.description["trained"],
        "params": result.description["params"],
        "n_images": result.n_images,
        "failures": len(result.failures),
        "latency_ms": result.mean_latency_ms,
        "peak_mem_mb": result.peak_mem_mb,
        "peak_mem_kind": result.peak_mem_kind,
        "device_name": env.device_name,
        "torch_version": env.torch_version,
        "date": date,
        "spec": json.dumps(result.description["spec"], sort_keys=True),
        "size_protocol": "" if config.size_protocol == "native" else config.size_protocol,
        "mask_set": "",
    }
    for n, seconds in result.latency_vs_instances.items():
        row[metric_key("latency_ms_n", n=n)] = 1000.0 * seconds
    row.update(result.metrics)
    if config.bootstrap:  # <metric>_lo / <metric>_hi beside the headline metrics
        from himbench.evaluation.breakdown import interval_columns

        row.update(interval_columns(result.records, config.bootstrap, config.seed))
    return row


def _data_kind(config: BenchConfig) -> str:
    """The ground truth's layout name (himbench.layouts decides what a folder is): "shards", "him2k", "p3m-500-np"..."""
    from himbench.layouts import find_layout

    layout = find_layout(config.data)
    return layout.name if layout is not None else "unknown"


def classic_columns(stat: Any, conventions: set[str]) -> dict[str, float]:
    """The mean classic errors of a run as ``p3m_<key>`` / ``dim_<key>`` columns (empty when the data is not a
    classic benchmark; ``images`` is left out, ``n_images`` says it)."""
    if len(conventions) != 1 or not stat.images:
        return {}
    convention = next(iter(conventions))
    return {metric_key(convention, key): value for key, value in stat.result().items() if key != "images"}


@dataclass(frozen=True)
class _FolderSample:
    id: str
    image: np.ndarray
    alphas: np.ndarray
    trimap: np.ndarray | None = None  # a classic benchmark's own trimap (uint8 0/128/255), when it ships one
    convention: str = ""  # a classic benchmark's error convention (himbench.metrics.classic), else empty


def _folder_samples(root: Path, split: str) -> Iterable[_FolderSample]:
    """Samples of a HIM-2K / M-HIM2K folder (``images/<split>/<stem>.jpg``, ``alphas/<split>/<stem>/<k>.png``) or
    of a single-matte benchmark folder (with its trimap and convention)."""
    from himbench.evaluation.ground_truth import open_ground_truth
    from himbench.io import InputError, read_image

    truth = open_ground_truth(root, split)
    for item in truth.items():
        if not item.image_path:
            raise InputError(root / "images" / split / item.stem, "no image for this ground truth")
        image = read_image(item.image_path)
        alphas, problems = item.load()
        if alphas is None:
            raise InputError(problems[0].source if problems else item.stem, problems[0].problem if problems else "")
        trimap, convention = None, ""
        if hasattr(item, "load_trimap"):  # himbench.layouts.SingleMatteItem
            trimap, trimap_problems = item.load_trimap(alphas.shape[1:])
            if trimap_problems:  # a bad trimap would silently change mask-cf's input and the trimap errors
                raise InputError(trimap_problems[0].source, trimap_problems[0].problem)
            convention = item.convention
        yield _FolderSample(item.stem, image, alphas, trimap, convention)


def _samples(config: BenchConfig) -> Iterable[Any]:
    """The images of ``config.split``: from built shards (``data/*.parquet``) or any folder layout of
    :mod:`himbench.layouts` (HIM-2K, or a single-matte benchmark such as P3M-500-NP)."""
    from itertools import islice

    from himbench.layouts import find_layout
    from himbench.shards import read_split

    layout = find_layout(config.data, "bench")  # one table decides what kind of folder this is
    if layout is not None and layout.name != "shards":
        return islice(_folder_samples(Path(config.data), config.split), config.limit)
    return islice(read_split(config.data, config.split), config.limit)


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def mean_std_row(rows: list[dict[str, Any]], label: str, metric_keys: Iterable[str]) -> dict[str, Any]:
    """One row summarising per-mask-set rows: the mean of every metric in ``metric_keys`` and its standard
    deviation over sets (``<key>_std``, ddof 0, as :func:`himbench.metrics.paper_units.mean_and_std`); cost and
    description columns are those of the first set, ``failures`` is the total."""
    from himbench.metrics.paper_units import mean_and_std

    out = dict(rows[0])
    out["method"] = label
    out["mask_set"] = f"mean of {len(rows)} sets"
    out["failures"] = sum(int(r.get("failures", 0)) for r in rows)
    for key in metric_keys:
        values = [v for r in rows if (v := _numeric(r.get(key))) is not None]
        if len(values) == len(rows):
            out[key], out[f"{key}_std"] = mean_and_std(values)
    return out


def _set_label(label: str, set_name: str) -> str:
    """``mask-cf@disk`` -> ``mask-cf@r50_c4_3x``; ``mask-cf@disk+erode`` -> ``mask-cf@r50_c4_3x+erode``."""
    base, _, guidance = label.partition("@")
    rest = guidance[len("disk"):] if guidance.startswith("disk") else (f"+{guidance}" if guidance else "")
    return f"{base}@{set_name}{rest}"


def run_bench(
    config: BenchConfig,
    progress: Callable[[Iterable, str], Iterable] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> tuple[Environment, list[MethodResult], list[dict[str, Any]]]:
    """Benchmark every method of ``config`` on the same images; returns the environment, results and CSV rows.

    With ``config.mask_sets``, every mask-guided method runs once per set (``masks_dir`` = the set's folder; the
    latency probe only on the first set) and gets a mean/std row after its per-set rows.

    With ``on_error`` given, a method that cannot be built (unknown name, bad checkpoint, bad option) is reported
    there and skipped; without it, the error propagates."""
    from himbench.io import InputError
    from himbench.methods import create_method, resolve_device
    from himbench.registry import is_mask_guided

    device = resolve_device(config.device)
    config = dataclasses.replace(config, device=device)
    env = detect_environment(device)
    date = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    results: list[MethodResult] = []
    rows: list[dict[str, Any]] = []
    for name in config.methods:
        sets: tuple[tuple[str, str | None], ...] = ((("", None),) if not (config.mask_sets and is_mask_guided(name))
                                                   else config.mask_sets)
        set_rows: list[dict[str, Any]] = []
        for k, (set_name, folder) in enumerate(sets):
            options = {"device": device, **config.method_options.get(name, {})}
            if folder:
                options["masks_dir"] = folder
            run_config = config if k == 0 else dataclasses.replace(config, latency_counts=())
            try:
                create = partial(create_method, name, **options)
                result = bench_method(create, _samples(run_config), run_config, progress, on_error)
            except (InputError, KeyError, TypeError, ValueError, OSError) as err:  # e.g. a bad checkpoint: skip it
                if on_error is None:
                    raise
                on_error(f"{name}{'@' + set_name if set_name else ''}: not benchmarked ({type(err).__name__}: {err})")
                continue
            row = result_row(result, run_config, env, date)
            if set_name:
                row["method"] = result.label = _set_label(result.label, set_name)
                row["mask_set"] = set_name
                if k > 0:  # the latency probe ran on the first set only: same method, same cost
                    row.update({key: value for key, value in set_rows[0].items() if key.startswith("latency_ms_n")})
            results.append(result)
            set_rows.append(row)
        rows.extend(set_rows)
        if len(sets) > 1 and len(set_rows) > 1:
            first = set_rows[0]
            label = first["method"].replace(f"@{first['mask_set']}", "@m-him2k", 1)
            rows.append(mean_std_row(set_rows, label, results[-1].metrics.keys()))
    return env, results, rows
