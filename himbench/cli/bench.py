"""``himbench bench``: accuracy and cost of several methods on the same data, into the leaderboard CSV."""

from __future__ import annotations

import json
import shlex

import click

from himbench.cli.errors import Command, UserError
from himbench.cli.options import (
    PathOrURL,
    device_option,
    given_on_command_line,
    no_progress_option,
    staged,
    storage_options_option,
    threads_option,
)
from himbench.metrics.table import HEADLINE_METRIC

__all__ = ["check_leaderboard", "command", "command_line", "echo_rows", "invocation_of", "parse_method_options",
           "update_leaderboard"]


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_method_options(
    methods: list[str],
    checkpoints: tuple[str, ...],
    options: tuple[str, ...],
    guidance: dict,
    seg_checkpoint: str | None,
) -> dict[str, dict]:
    """Per-method keyword options from the CLI flags (``METHOD=PATH`` and ``METHOD.KEY=VALUE``)."""
    from himbench.registry import is_mask_guided

    per_method: dict[str, dict] = {name: {} for name in methods}
    for name in methods:
        if is_mask_guided(name):
            per_method[name].update({k: v for k, v in guidance.items() if v is not None})
        if name in ("seg-refine", "seg-mgm") and seg_checkpoint:
            per_method[name]["seg_checkpoint"] = seg_checkpoint
    for item in checkpoints:
        name, sep, path = item.partition("=")
        if not sep or name not in per_method:
            raise click.BadParameter(f"{item!r}: expected METHOD=PATH with METHOD one of {', '.join(methods)}")
        per_method[name]["checkpoint"] = path
    for item in options:
        target, sep, value = item.partition("=")
        name, dot, key = target.rpartition(".")
        if not sep or not dot or name not in per_method:
            raise click.BadParameter(f"{item!r}: expected METHOD.KEY=VALUE with METHOD one of {', '.join(methods)}")
        per_method[name][key] = _value(value)
    return per_method


@click.command(name="bench", cls=Command)
@click.option("--methods", "-m", required=True,
              help="Comma-separated methods: e2ehim-tiny, e2ehim-base, mask-only, mask-cf, mask-refine (mask-guided), "
                   "seg-tiny, seg-refine, e2ehim-official, mgm (mask-guided), seg-mgm (need the authors' weights: "
                   "--checkpoint METHOD=DIR from `himbench import-checkpoint`), or any model of `himbench models`.")
@click.option("--data", "-d", required=True, type=PathOrURL(exists=True, file_okay=False),
              help="Built shard folder (himbench build-dataset output), a HIM-2K / M-HIM2K folder "
                   "(images/<split>/, alphas/<split>/<stem>/) holding the split to score, or a classic benchmark "
                   "folder (P3M-500-P/NP, AIM-500, PPM-100, Composition-1k; split test): its rows also carry the "
                   "benchmark's own errors (p3m_* / dim_* columns), mask-cf solves on its trimap (mask-cf@trimap) "
                   "and mask-guided methods' ground-truth masks are marked oracle:gt.")
@click.option("--split", default="test", show_default=True,
              help="Split of --data to score; a comma list scores each in turn with its own rows (M-HIM2K: "
                   "--split comp,natural for the composite and natural subsets). On clips the default is every split.")
@click.option("--out", "-o", "out_dir", default="bench-results", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the result JSON (its name holds data, split and environment) and the config JSON.")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="METHOD=PATH",
              help="Checkpoint of a learned method (repeatable), e.g. mask-refine=runs/refiner/best.safetensors. "
                   "For seg-refine / seg-mgm this is the refiner's checkpoint; see --seg-checkpoint.")
@click.option("--seg-checkpoint", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Checkpoint of the segmenter (seg-tiny) of seg-refine and seg-mgm.")
@click.option("--option", "options", multiple=True, metavar="METHOD.KEY=VALUE",
              help="Any other method option (repeatable; VALUE parsed as JSON when it is), e.g. mask-cf.work_size=480.")
@click.option("--guidance", default="none", show_default=True,
              help="How mask-guided methods' masks are made from ground truth: none, erode, dilate, drop, merge, or a "
                   "comma list applied in order (e.g. erode,drop). Binarised at alpha >= 0.5 first. On clips also "
                   "first-frame (the default), xmem or disk:<mask_dir> (masks from the V-HIM folder); a perturbation "
                   "applies to the first frame's masks.")
@click.option("--guidance-seed", default=0, show_default=True, type=int,
              help="Seed of drop/merge choices (per image: seed + image id, so every method sees the same masks).")
@click.option("--guidance-radius", default=4, show_default=True, type=int, help="Pixels to erode/dilate by.")
@click.option("--masks", "masks_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Read guidance masks from disk instead: one set (DIR/<split>/<image_id>/<k>.png), or the released "
                   "M-HIM2K folder holding several sets (DIR/masks_matched_<model>/<split>/<image_id>/<k>.png): "
                   "one evaluation per set, per-set rows and a mean/std row.")
@click.option("--size-protocol", default="native", show_default=True,
              type=click.Choice(["native", "maggie", "instmatt"]),
              help="Resize images as a paper's test code did before predicting (scores stay at the original size): "
                   "maggie = short side 576, instmatt = long side at most 1280. Recorded in the row.")
@click.option("--limit", default=None, type=int, help="Score only the first N images of the split.")
@device_option(help="auto (cuda when available), cpu, cuda, cuda:1 ...")
@click.option("--latency-size", default=640, show_default=True, type=int,
              help="Side of the synthetic probe images for latency versus instance count (the paper's 640).")
@click.option("--latency-repeats", default=3, show_default=True, type=int,
              help="Timed runs per instance count (the fastest is kept: the least disturbed by other load).")
@click.option("--warmup", default=1, show_default=True, type=int, help="Untimed runs before timing starts.")
@click.option("--max-instances", default=10, show_default=True, type=int,
              help="Latency probe instance counts are 1..this.")
@click.option("--leaderboard", "leaderboard_csv", default="leaderboard/results.csv", show_default=True,
              type=click.Path(dir_okay=False), help="CSV whose rows for these methods/data/environment are updated.")
@click.option("--no-leaderboard", is_flag=True, help="Do not touch the leaderboard CSV.")
@threads_option("torch CPU threads (default: torch's choice).")
@no_progress_option("Hide the progress bars.")
@click.option("--bootstrap", default=0, show_default=True, type=click.IntRange(min=0),
              help="Bootstrap resamples over images: adds <metric>_lo/<metric>_hi (95% interval) columns to the "
              "results, shown as ± by the leaderboard. 0: none.")
@click.option("--breakdown", "breakdown_spec", default=None, metavar="STRATA",
              help="Also score by stratum (occlusion,people,size or all, as `himbench evaluate --breakdown`); "
              "written to OUT/<results stem>.breakdown.json, one entry per method.")
@storage_options_option()
@click.option("--smooth", "smoothing", default="0", show_default=True, metavar="W[,W...]",
              help="Video data only: temporal smoothing strengths, one row per strength (0: the plain per-frame "
              "baseline), e.g. 0,0.5 to show what consistency costs in per-frame error.")
@click.option("--temporal-warp", type=click.Choice(["correct", "maggie-transposed"]), default="correct",
              show_default=True, help="Video data only: the MESSDdt warp of the maggie_* columns.")
def command(methods, data, split, out_dir, checkpoints, seg_checkpoint, options, guidance, guidance_seed,
            guidance_radius, masks_dir, size_protocol, limit, device, latency_size, latency_repeats, warmup,
            max_instances, leaderboard_csv, no_leaderboard, threads, no_progress, bootstrap=0,
            breakdown_spec=None, storage_options=None, smoothing="0", temporal_warp="correct") -> None:
    """Run every method of --methods on the same images of --data: predict, score with the instance metrics
    (IMQ/RQ/MQ at IoU 0.5 and 0.75, and per-instance errors), and measure cost (parameters, mean latency per
    image, latency versus 1..10 instances on synthetic 640 x 640 images, peak memory).

    Writes OUT/bench_<data>_<split>_<environment>.json (rows of later runs on the same data and machine are merged
    in; the run's config goes beside it as .config.json) and updates the leaderboard CSV (one row per method, data,
    split and environment). Render it with `himbench leaderboard`.
    """
    import torch

    from himbench.bench import BenchConfig
    from himbench.bench.harness import find_mask_sets
    from himbench.device import resolve_device
    from himbench.io import InputError

    if threads:
        torch.set_num_threads(threads)
    try:
        resolve_device(device)  # a device this machine lacks is refused before any method is built
    except InputError as err:
        raise click.BadParameter(str(err), param_hint="--device") from err
    from himbench.evaluation.breakdown import parse_strata

    try:
        strata = parse_strata(breakdown_spec) if breakdown_spec else ()
    except InputError as err:
        raise click.BadParameter(err.problem, param_hint="--breakdown") from err
    invocation = command_line(click.get_current_context())
    data = str(staged(data, storage_options))  # a URL is copied into the local cache first (docs/storage.md)
    from himbench.predictions.video_writer import is_video_input

    if is_video_input(data):  # clips (a --video build or a V-HIM folder): the video benchmark
        return _run_video(click.get_current_context(), data, split, out_dir, leaderboard_csv, no_leaderboard,
                          checkpoints, options, guidance, guidance_seed, guidance_radius, seg_checkpoint, device,
                          smoothing, temporal_warp, no_progress, methods)
    names = [m.strip() for m in methods.split(",") if m.strip()]
    splits = [s.strip() for s in split.split(",") if s.strip()]
    mask_sets = find_mask_sets(masks_dir) if masks_dir else ()
    guidance_options = {"guidance": guidance, "guidance_seed": guidance_seed, "guidance_radius": guidance_radius,
                        "masks_dir": None if mask_sets else masks_dir}
    method_options = parse_method_options(names, checkpoints, options, guidance_options, seg_checkpoint)
    if mask_sets:
        click.echo(f"M-HIM2K: {len(mask_sets)} mask sets in {masks_dir}: {', '.join(n for n, _ in mask_sets)}")
    if not no_leaderboard:  # refuse a malformed leaderboard before spending minutes on the benchmark
        check_leaderboard(leaderboard_csv)
    for one_split in splits:
        config = BenchConfig(
            data=str(data), methods=tuple(names), split=one_split, method_options=method_options, limit=limit,
            device=None if device == "auto" else device, latency_counts=tuple(range(1, max_instances + 1)),
            latency_size=latency_size, latency_repeats=latency_repeats, warmup=warmup, mask_sets=mask_sets,
            size_protocol=size_protocol, bootstrap=bootstrap, breakdown=strata,
        )
        _run_one(config, data, one_split, out_dir, leaderboard_csv, no_leaderboard, limit, no_progress, invocation)


def check_leaderboard(path: str) -> None:
    """Refuse a malformed leaderboard CSV in one line (exit 2) before any method runs."""
    from himbench.bench.results import MalformedResultsError, read_results

    try:
        read_results(path)
    except MalformedResultsError as err:
        raise UserError(str(err)) from err


def update_leaderboard(path: str, rows: list[dict]) -> None:
    """Merge a run's rows into the leaderboard CSV; a malformed one is a one-line error (exit 2)."""
    from himbench.bench.results import MalformedResultsError, update_results

    try:
        update_results(path, rows)
    except MalformedResultsError as err:
        raise UserError(str(err)) from err


def command_line(ctx: click.Context) -> str:
    """The ``himbench bench`` invocation that reproduces this run (options that differ from their defaults), kept in
    every row's ``command`` column so the leaderboard can say how each row was made. ``--storage-options`` is left
    out: it may hold credentials, which must not reach a CSV."""
    return invocation_of(ctx.command, {k: v for k, v in ctx.params.items() if k != "storage_options"})


def invocation_of(cmd: click.Command, params: dict) -> str:
    """``himbench <cmd> ...`` with the options of ``params`` that differ from their defaults (a missing one is
    left out): the command line that runs ``cmd`` with ``params``."""
    parts = ["himbench", cmd.name or "bench"]
    for param in cmd.params:
        value = params.get(param.name)
        if not isinstance(param, click.Option) or value in (None, False, ()) or value == param.default:
            continue
        flag = param.opts[0]
        if param.is_flag:
            parts.append(flag)
        elif param.multiple:
            for item in value:
                parts += [flag, str(item)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def _run_one(config, data: str, split: str, out_dir: str, leaderboard_csv: str, no_leaderboard: bool,
             limit: int | None, no_progress: bool, invocation: str) -> None:
    """One split of ``himbench bench``: run, write the result JSON, update the leaderboard, print the table."""
    from tqdm import tqdm

    from himbench.bench import run_bench
    from himbench.bench.record import write_run

    def progress(items, name):
        return tqdm(items, desc=name, unit="img", total=limit, disable=no_progress)

    errors: list[str] = []

    def on_error(message: str) -> None:
        errors.append(message)
        click.echo(f"error: {message}", err=True)

    try:
        env, results, rows = run_bench(config, progress, on_error)
    except (KeyError, ValueError) as err:  # a bad method name, option or data folder (InputError is a ValueError)
        raise UserError(str(err)) from err
    for row in rows:
        row["command"] = invocation
    result_path = write_run(config, env, results, rows, out_dir, data, split)
    if not no_leaderboard:
        update_leaderboard(leaderboard_csv, rows)
    echo_rows(env.slug, split, rows)
    click.echo(f"wrote {result_path}" + ("" if no_leaderboard else f" and updated {leaderboard_csv}"))
    skipped = [m for m in errors if "not benchmarked" in m]
    if skipped:
        raise click.ClickException(f"{len(skipped)} method(s) not benchmarked (see errors above)")


def echo_rows(environment: str, split: str, rows: list[dict]) -> None:
    """Print a run's rows as the short table ``himbench bench`` (and ``himbench demo``) shows."""
    click.echo(f"environment: {environment}" + (f" · split {split}" if split else ""))
    header = f"{'method':<28} {HEADLINE_METRIC:>11} {'RQ@0.5':>7} {'inst_MAD':>9} {'ms/img':>8} {'ms@n6':>8} {'MiB':>7}"
    click.echo(header)
    nan = float("nan")
    for row in rows:
        click.echo(
            f"{row['method']:<28} {row.get(HEADLINE_METRIC, nan):>11.2f} {row.get('RQ@0.5', nan):>7.2f} "
            f"{row.get('inst_MAD', nan):>9.2f} {row['latency_ms']:>8.1f} "
            f"{row.get('latency_ms_n6', nan):>8.1f} {row['peak_mem_mb']:>7.1f}"
        )
        if row["trained"] is False:
            click.echo(f"  note: {row['method']} ran with random weights (no checkpoint)")


VIDEO_SOURCES = ("first-frame", "xmem")  # --guidance values that name where video masks come from
VIDEO_LEADERBOARD = "leaderboard/video.csv"


# Options of the image benchmark that the video one has no use for: given on clips they are refused, not ignored.
IMAGE_ONLY_OPTIONS = {"masks_dir": "--masks", "limit": "--limit", "size_protocol": "--size-protocol",
                      "bootstrap": "--bootstrap", "breakdown_spec": "--breakdown"}


def _video_guidance(guidance: str) -> tuple[str | None, str]:
    """(video guidance source or None, image perturbation) of --guidance on clips; BadParameter for anything that is
    neither a source (first-frame, xmem, disk:NAME) nor a comma list of perturbations."""
    from himbench.guidance import PERTURBATIONS
    from himbench.io import InputError, safe_name

    if guidance in VIDEO_SOURCES:
        return guidance, "none"
    if guidance.startswith("disk:"):
        try:
            safe_name(guidance[5:], "--guidance", "mask folder name")
        except InputError as err:
            raise click.BadParameter(f"{guidance!r}: {err.problem}", param_hint="--guidance") from None
        return guidance, "none"
    steps = [step.strip() for step in guidance.split(",")]
    if not all(step in PERTURBATIONS for step in steps):
        raise click.BadParameter(f"{guidance!r}: on clips choose first-frame, xmem, disk:<mask_dir>, or a comma list "
                                 f"of {', '.join(PERTURBATIONS)} (applied to the first frame's masks)",
                                 param_hint="--guidance")
    return None, guidance


def _video_splits(ctx: click.Context, data: str, split: str) -> list[str | None]:
    """The splits to bench on clips: --split (a comma list) when given, each checked against the data; otherwise
    the data's only split (None) or, when it has several, each in turn."""
    from himbench.evaluation.video import detect_video_ground_truth

    _, _, found = detect_video_ground_truth(data)
    if not given_on_command_line(ctx, "split"):
        return [None] if len(found) == 1 else list(found)
    wanted = list(dict.fromkeys(s.strip() for s in split.split(",") if s.strip()))
    missing = [s for s in wanted if s not in found]
    if missing or not wanted:
        raise UserError(f"{data}: no split {', '.join(repr(s) for s in missing) or repr(split)} in the clips "
                        f"(found: {', '.join(found)})")
    return wanted


def _parse_strengths(text: str) -> tuple[float, ...]:
    strengths = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise click.BadParameter(f"{part!r} is not a number", param_hint="--smooth") from None
        if not 0.0 <= value < 1.0:
            raise click.BadParameter(f"{part!r}: a strength is in [0, 1)", param_hint="--smooth")
        strengths.append(value)
    return tuple(dict.fromkeys(strengths))


def _run_video(ctx: click.Context, data: str, split: str, out_dir: str, leaderboard_csv: str, no_leaderboard: bool,
               checkpoints, options, guidance: str, guidance_seed: int, guidance_radius: int, seg_checkpoint,
               device: str, smoothing: str, temporal_warp: str, no_progress: bool, methods: str) -> None:
    """The video case of bench (issue 23): himbench.bench.video over clips, rows into leaderboard/video.csv unless
    --leaderboard is given. --guidance first-frame/xmem/disk:NAME picks the masks' source; a perturbation (erode,
    drop...) applies to the first frame's masks, as for images."""
    from himbench.bench.video import VideoBenchConfig, run_video_bench

    for name, flag in IMAGE_ONLY_OPTIONS.items():
        if given_on_command_line(ctx, name):
            raise click.UsageError(f"{flag} applies to images only, not to clips ({data})")
    if not given_on_command_line(ctx, "leaderboard_csv"):
        leaderboard_csv = VIDEO_LEADERBOARD
    video_guidance, perturbation = _video_guidance(guidance)
    splits = _video_splits(ctx, data, split)  # checked before any method runs
    names = [m.strip() for m in methods.split(",") if m.strip()]
    guidance_options = {"guidance": perturbation, "guidance_seed": guidance_seed, "guidance_radius": guidance_radius}
    method_options = parse_method_options(names, checkpoints, options, guidance_options, seg_checkpoint)
    if not no_leaderboard:
        check_leaderboard(leaderboard_csv)
    strengths = _parse_strengths(smoothing)
    errors: list[str] = []

    def on_error(message: str) -> None:
        errors.append(message)
        click.echo(f"error: {message}", err=True)

    rows = []
    for one_split in splits:  # each split its own run folder and rows, as the image bench's comma list
        config = VideoBenchConfig(
            data=data, methods=tuple(names), split=one_split, smoothing=strengths, guidance=video_guidance,
            method_options=method_options, device=None if device == "auto" else device, warp=temporal_warp,
        )
        env, split_rows = run_video_bench(config, out_dir, progress=not no_progress, on_error=on_error)
        rows.extend(split_rows)
    invocation = command_line(ctx)
    for row in rows:
        row["command"] = invocation
    if rows and not no_leaderboard:
        update_leaderboard(leaderboard_csv, rows)
    click.echo(f"environment: {env.slug}")
    click.echo(f"{'method':<40} {HEADLINE_METRIC:>11} {'MAD':>8} {'dtSSD':>8} {'MESSDdt':>9} {'id_sw':>6} "
               f"{'ms/frame':>9}")
    nan = float("nan")
    for row in rows:
        click.echo(f"{row['method']:<40} {row.get(HEADLINE_METRIC, nan):>11.2f} {row.get('maggie_MAD', nan):>8.2f} "
                   f"{row.get('maggie_dtSSD', nan):>8.2f} {row.get('maggie_MESSDdt', nan):>9.2f} "
                   f"{row.get('id_switches', 0):>6} {row['latency_ms']:>9.1f}")
    click.echo(f"predictions and evaluations in {out_dir}" + ("" if no_leaderboard or not rows
                                                               else f"; updated {leaderboard_csv}"))
    if errors:
        raise click.ClickException(f"{len(errors)} method(s) not benchmarked (see errors above)")
