"""``himbench evaluate PRED_DIR [--gt GT]``: score a prediction folder and write the report files.

Without ``--gt`` the ground truth is the one named by ``PRED_DIR/predictions.json`` (written by ``himbench predict``,
see :mod:`himbench.predictions.manifest`), checked to be unchanged; an explicit ``--gt`` always wins.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import click

from himbench.cli.errors import Command, UserError
from himbench.cli.options import (
    PathOrURL,
    engine_option,
    given_on_command_line,
    ray_address_option,
    staged,
    storage_options_option,
    workers_option,
)

__all__ = ["command"]


class _FiniteFloat(click.ParamType):
    """A finite float, optionally in (``low``, ``high``]: click's FloatRange lets NaN through (it compares false
    with both bounds), and a NaN threshold or score would empty the predictions after the whole run."""

    name = "float"

    def __init__(self, low: float | None = None, high: float | None = None) -> None:
        self.low, self.high = low, high

    def convert(self, value, param, ctx) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if (self.low is not None and number <= self.low) or (self.high is not None and number > self.high):
            self.fail(f"{value!r} is not in the range {self.low}<x<={self.high}", param, ctx)
        return number


def _check_writable(folder: Path) -> None:
    """Refuse, before scoring, an --out that cannot be created or written (its nearest existing ancestor is a file or
    not writable); the write itself is still guarded, as permissions are only known for sure by trying."""
    for parent in (folder, *folder.parents):
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise UserError(f"{parent}: not a folder, so the report cannot be written to {folder} (--out)")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"{parent}: not writable, so the report cannot be written to {folder} (--out)")
            return


@click.command(name="evaluate", cls=Command)
@click.argument("pred_dir", type=PathOrURL(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--gt",
    "gt",
    default=None,
    type=PathOrURL(exists=True, file_okay=False, path_type=Path),
    help="Ground truth: a built shard folder (with data/*.parquet, as `himbench build-dataset` writes) or a folder "
    "in the HIM-2K layout (alphas/<split>/<stem>/<k>.png, optionally images/<split>/<stem>.jpg). Default: the "
    "shard folder named in PRED_DIR/predictions.json (written by `himbench predict`). Video ground truth (a "
    "`build-dataset --video` folder, or a V-HIM folder with <split>/fgr/ and <split>/pha/) runs the video "
    "evaluation; PRED_DIR then holds <split>/<video>/<frame>/<k>.png (docs/video.md).",
)
@click.option(
    "--layout",
    default=None,
    metavar="NAME",
    help="Force the ground truth's data layout instead of detecting it: shards, him2k, P3M-500-P, P3M-500-NP, "
    "AIM-500, PPM-100, Composition-1k, image-alpha (see docs/layouts.md).",
)
@click.option(
    "--split",
    default=None,
    help="Split to score. Default: the one split found in both PRED_DIR and the ground truth, else the ground "
    "truth's only split, else 'test'.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the report (summary.json/csv, per_image.json/csv, problems.csv, evaluation_config.json, and "
    "plots). Default: PRED_DIR-eval/<split> beside PRED_DIR.",
)
@workers_option("Worker processes, one image each at a time. Default: all CPU cores. 1 runs in this process.")
@click.option(
    "--threshold",
    "thresholds",
    type=_FiniteFloat(0, 1),
    multiple=True,
    default=(0.5, 0.75),
    show_default=True,
    help="IoU threshold for a true positive; repeat the option for several (IMQ/RQ/MQ are reported at each).",
)
@click.option(
    "--min-score",
    type=_FiniteFloat(),
    default=None,
    help="Drop predictions whose confidence in the image's scores.json is below this before matching. "
    "Default: keep every prediction (IMQ itself ignores scores).",
)
@click.option("--plot", is_flag=True, help="Also write error_distribution.png and worst_images.png (matplotlib).")
@click.option(
    "--worst", type=click.IntRange(min=1), default=8, show_default=True, help="Images in the worst-images plot."
)
@click.option(
    "--max-problems",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Problems printed on the terminal (all of them go to problems.csv).",
)
@click.option("--strict", is_flag=True, help="Exit with status 1 when any input problem was found.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="Read symbolic links in PRED_DIR that point outside it (by default they are reported and left out, so "
    "a folder of links to the ground truth cannot score).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=None,
    help="Refuse images and mattes larger than this many pixels before decoding them. Default: "
    "$HIMBENCH_MAX_PIXELS or 100000000.",
)
@engine_option("score images as Ray tasks")
@ray_address_option()
@click.option(
    "--breakdown",
    "breakdown_spec",
    default=None,
    metavar="STRATA",
    help="Also score by stratum: occlusion (each person by how hidden it is; shards only), people (each image by "
    "its number of people: 1, 2-3, 4-6, 7+), size (each person by its share of the image), comma-separated or "
    "'all'. Written to summary.json under 'breakdown' (plotted with --plot).",
)
@click.option(
    "--occlusion-buckets",
    default="0,0.05,0.3,0.5,1",
    show_default=True,
    metavar="EDGES",
    help="Edges of the occlusion buckets ([e0, e1), ..., [e(k-1), ek]), from 0 to 1.",
)
@click.option(
    "--size-buckets",
    default="0,0.01,0.05,0.2,1",
    show_default=True,
    metavar="EDGES",
    help="Edges of the person-size buckets (share of the image's pixels), from 0 to 1.",
)
@click.option(
    "--bootstrap",
    "resamples",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Bootstrap resamples over images for the 95% interval of every number in summary.json; 0: none.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap resamples.")
@click.option(
    "--temporal-warp",
    type=click.Choice(["correct", "maggie-transposed"]),
    default="correct",
    show_default=True,
    help="Video ground truth only: the MESSDdt warp of the MaGGIe-convention numbers. maggie-transposed reads "
    "pixel (j + dx, i + dy) of the next frame for pixel (i, j), as MaGGIe's code does, to match its printed "
    "numbers (docs/temporal_metrics.md).",
)
@storage_options_option()
def command(
    pred_dir: Path,
    gt: Path,
    split: str | None,
    out: Path | None,
    workers: int | None,
    thresholds: tuple[float, ...],
    min_score: float | None,
    plot: bool,
    worst: int,
    max_problems: int,
    strict: bool,
    quiet: bool,
    follow_symlinks: bool,
    max_pixels: int | None,
    engine: str,
    ray_address: str | None,
    layout: str | None = None,
    breakdown_spec: str | None = None,
    occlusion_buckets: str = "0,0.05,0.3,0.5,1",
    size_buckets: str = "0,0.01,0.05,0.2,1",
    resamples: int = 1000,
    seed: int = 0,
    temporal_warp: str = "correct",
    storage_options: dict | None = None,
) -> None:
    """Score the instance mattes in PRED_DIR against ground truth (SPEC s.2-4).

    PRED_DIR holds <split>/<image_stem>/<k>.png, one 8-bit grey PNG per predicted person (any order; 16-bit PNG
    and float TIFF are accepted), plus an optional scores.json per image. Predictions are matched to the ground
    truth by IoU of (alpha > 0) with the Hungarian algorithm, and the command prints IMQ_mad/mse/grad/conn, RQ and MQ
    (InstMatt, x100) at each IoU threshold, then the per-instance errors of matched instances (SAD/1000, MSE x1000,
    MAD x1000, Grad/1000, Conn/1000 over the whole image) for comparison with MaGGIe-style tables.

    Bad inputs (missing or extra folders, wrong sizes, colour images, unreadable or oversized files, NaN, links
    outside PRED_DIR) are reported per file and the rest is still scored; an image without a prediction folder
    counts all its people as missed. A PRED_DIR whose entries match no ground-truth image is an error (exit 2).

    The ground truth's layout is detected (--layout forces one). On a single-matte benchmark (P3M-500-P/NP,
    AIM-500, PPM-100, Composition-1k, read as released) PRED_DIR holds <stem>.png, one matte per image (an instance
    folder <split>/<stem>/ is merged as the clipped sum of its mattes), and the command also prints SAD, MSE, MAD,
    Grad and Conn over the whole image and the trimap region, in the benchmark's own convention and units.
    """
    from himbench.evaluation import (
        evaluate_folder,
        format_classic_table,
        format_instance_table,
        format_summary_table,
        write_report,
    )
    from himbench.evaluation.breakdown import add_statistics, parse_edges, parse_strata
    from himbench.evaluation.ground_truth import Problem
    from himbench.evaluation.runner import unreadable_ground_truth

    # before any scoring: a typo in an option must not cost a whole run (an InputError exits 2, see Command)
    strata = parse_strata(breakdown_spec) if breakdown_spec else ()
    occlusion_edges = parse_edges(occlusion_buckets, "--occlusion-buckets")
    size_edges = parse_edges(size_buckets, "--size-buckets")
    if out is not None:
        _check_writable(out)
    # A URL (s3://...) is staged into the local cache and read from there; its report goes beside the current
    # folder (./NAME-eval/SPLIT), not into the cache.
    url_name = pred_dir.rstrip("/").rsplit("/", 1)[-1] if isinstance(pred_dir, str) else None
    pred_dir = staged(pred_dir, storage_options, Path)
    gt = staged(gt, storage_options, Path)
    if gt is not None:
        from himbench.evaluation.video import is_video_ground_truth

        if is_video_ground_truth(gt):  # a clip build or a V-HIM folder: the video evaluation
            _refuse_image_only_options(click.get_current_context(), gt)
            _evaluate_video(pred_dir, gt, split, out, temporal_warp, thresholds, quiet, max_problems, strict)
            return
    gt, provenance, manifest_problem = _ground_truth(pred_dir, gt)
    result = evaluate_folder(
        pred_dir,
        gt,
        split=split,
        workers=workers,
        thresholds=tuple(sorted(set(thresholds))),
        min_score=min_score,
        progress=not quiet,
        engine=engine,
        ray_address=ray_address,
        follow_symlinks=follow_symlinks,
        max_pixels=max_pixels,
        layout=layout,
    )
    nothing_read = unreadable_ground_truth(result)
    if nothing_read is not None:  # "0 images" and a 0.00 summary would read as a result
        raise UserError(f"{result.config.gt}: {nothing_read}")
    if manifest_problem is not None:  # scored against --gt anyway; the bad manifest is still a counted problem
        result.problems.insert(0, Problem(*manifest_problem))
    add_statistics(result, strata, occlusion_edges=occlusion_edges, size_edges=size_edges, resamples=resamples,
                   seed=seed)
    config = result.config
    resolved = pred_dir.resolve() if url_name is None else Path(url_name).absolute()
    out_dir = out or resolved.with_name(resolved.name + "-eval") / config.split
    try:
        paths = write_report(result, out_dir, provenance=provenance)
        if plot:
            from himbench.evaluation.plots import write_plots

            paths.update(write_plots(result, out_dir, worst=worst))
    except OSError as err:  # read-only, full or immutable: one line, not a traceback
        where = err.filename or out_dir
        raise UserError(f"{where}: cannot write the report ({err.strerror or err})") from err

    summary = result.summary
    click.echo(
        f"\n{config.split}: {summary['num_images']} images, {summary['num_gt']} ground-truth and "
        f"{summary['num_pred']} predicted instances ({config.gt_kind} ground truth at {config.gt})"
    )
    if provenance:
        click.echo(f"predictions by {provenance['model']} (weights sha256 {str(provenance['checkpoint_sha256'])[:12]})")
    if result.units is not None:
        click.echo(f"\n{config.layout} errors ({config.convention} convention; units in summary.json)")
        click.echo(format_classic_table(summary, result.units))
    click.echo("\nInstance matting quality (x100)")
    click.echo(format_summary_table(summary, config.thresholds))
    click.echo("\nPer-instance errors (matched instances, whole image)")
    click.echo(format_instance_table(summary))
    if result.breakdown:
        from himbench.evaluation.report import format_breakdown

        click.echo("\nBreakdown")
        click.echo(format_breakdown(result.breakdown))
    _finish(result.problems, max_problems, out_dir, paths, strict)


# Image-evaluation options the video evaluation does not implement: given with video ground truth they are refused
# rather than silently ignored (--follow-symlinks in particular must not look honoured while links are refused).
_IMAGE_ONLY_OPTIONS = {"min_score": "--min-score", "plot": "--plot", "follow_symlinks": "--follow-symlinks",
                       "max_pixels": "--max-pixels", "layout": "--layout", "breakdown_spec": "--breakdown",
                       "resamples": "--bootstrap"}


def _refuse_image_only_options(ctx: click.Context, gt: Path) -> None:
    for name, flag in _IMAGE_ONLY_OPTIONS.items():
        if given_on_command_line(ctx, name):
            raise click.UsageError(f"{flag} applies to image ground truth only, not to video ground truth ({gt})")


def _evaluate_video(pred_dir: Path, gt: Path, split: str | None, out: Path | None, warp: str,
                    thresholds: tuple[float, ...], quiet: bool, max_problems: int, strict: bool) -> None:
    """The video evaluation (himbench.evaluation.video): score, write the files, print the table."""
    from himbench.evaluation.video import evaluate_video_folder, format_video_summary, write_video_evaluation

    ev = evaluate_video_folder(pred_dir, gt, split=split, warp=warp, progress=not quiet,
                               thresholds=tuple(sorted(set(thresholds))))
    config = ev.config
    if not ev.clips:  # "0 clips" and a 0.00 table would read as a result
        raise UserError(f"{config['gt']}: no clip of split {config['split']!r} could be read")
    resolved = pred_dir.resolve()
    out_dir = out or resolved.with_name(resolved.name + "-eval") / config["split"]
    try:
        paths = write_video_evaluation(ev, out_dir)
    except OSError as err:
        where = err.filename or out_dir
        raise UserError(f"{where}: cannot write the report ({err.strerror or err})") from err
    summary = ev.summary
    click.echo(f"\n{config['split']}: {summary['num_clips']} clips, {summary.get('num_frames', 0)} frames, "
               f"{summary.get('num_gt', 0)} ground-truth person-frames ({config['gt_kind']} ground truth at "
               f"{config['gt']}; MaGGIe-convention warp {warp})")
    click.echo(format_video_summary(summary))
    _finish(ev.problems, max_problems, out_dir, paths, strict)


def _finish(problems: list, max_problems: int, out_dir: Path, paths: dict, strict: bool) -> None:
    """The end of an evaluation's output (image or video): its input problems, where the report went, and exit
    code 1 under ``--strict`` when there were problems."""
    from himbench.evaluation import format_problems

    if problems:
        click.echo(f"\n{len(problems)} input problem(s):", err=True)
        if max_problems:
            click.echo(format_problems(problems, max_problems), err=True)
    click.echo(f"\nReport written to {out_dir}")
    for name in sorted(paths):
        click.echo(f"  {paths[name]}")
    if strict and problems:
        raise SystemExit(1)


def _ground_truth(pred_dir: Path, gt: Path | None) -> tuple[Path, dict | None, tuple[str, str] | None]:
    """``--gt`` if given, else the checked ground truth of PRED_DIR's manifest; plus the manifest's provenance, and
    (file, message) of a bad manifest that an explicit ``--gt`` made harmless (reported as a problem)."""
    from himbench.io import InputError
    from himbench.predictions.manifest import MANIFEST_NAME, ground_truth_of, read_manifest

    try:
        manifest = read_manifest(pred_dir)
    except InputError as err:
        if gt is not None:  # an explicit --gt needs no manifest: score, and report why there is no provenance
            return gt, None, (str(err.source), f"{err.problem}; scored against --gt without provenance")
        raise
    provenance = manifest.provenance() if manifest is not None else None
    if gt is not None:
        return gt, provenance, None
    if manifest is None:
        raise click.UsageError(
            f"no ground truth: {pred_dir} has no {MANIFEST_NAME} (it is written by `himbench predict`). Pass --gt "
            "with a built shard folder (data/*.parquet, from `himbench build-dataset`) or a HIM-2K folder "
            "(alphas/<split>/<stem>/<k>.png)."
        )
    return ground_truth_of(pred_dir, manifest), provenance, None
