"""`himbench build-dataset`: synthesise HIM shards."""

from __future__ import annotations

import math

import click

from himbench.cli.errors import Command, UserError
from himbench.cli.options import (
    engine_option,
    given_on_command_line,
    no_progress_option,
    ray_address_option,
    staged,
    storage_options_option,
    workers_option,
)

__all__ = ["command"]

# Mirrors himbench.build_config (not imported here, so that `--help` stays light).
MAX_SIDE = 8192
MAX_INSTANCES = 20
MAX_SPLIT_IMAGES = 10_000_000
OCCLUSION_PRESETS = {"none": None, "easy": (0.0, 0.0), "medium": (0.05, 0.5), "hard": (0.5, 0.85)}
# Build presets: defaults for options the command line does not give (an option given wins). him-100k matches the
# statistics E2E-HIM (Liu et al., arXiv 2403.01510) publishes for HIM-100K: over 100,000 images (the abstract) and
# 326,000 instances (as issue 24 quotes the paper), i.e. 3.26 people per image. Only that mean is published: the
# weights over 2-5 people (I-HIM50K's range) are ours, chosen so the expected count is exactly 3.26
# (2*.30 + 3*.30 + 4*.24 + 5*.16). 640 px and JPEG composites are ours too: the paper times 640x640 images, and JPEG
# keeps a 100k build near 16 GB (161 KB per image measured; docs/cluster.md has the timing).
BUILD_PRESETS: dict[str, dict[str, str]] = {
    "him-100k": {
        "splits": "train=100000",
        "size": "640",
        "instances": "2-5",
        "instance_weights": "0.30,0.30,0.24,0.16",
        "image_format": "jpg",
    },
}


def _parse_splits(value: str) -> dict[str, int]:
    splits: dict[str, int] = {}
    for part in value.split(","):
        name, _, count = part.partition("=")
        name, count = name.strip(), count.strip()
        # ASCII digits only ("²".isdigit() is True but int() refuses it), and the length is bounded before int():
        # a 5000-digit count is over the cap, not a reason to parse it.
        if not name or not count.isascii() or not count.isdecimal():
            raise click.BadParameter(f"expected NAME=COUNT[,NAME=COUNT...], got {part!r}", param_hint="--splits")
        if name in splits:
            raise click.BadParameter(f"split {name!r} is given twice", param_hint="--splits")
        if len(count.lstrip("0")) > len(str(MAX_SPLIT_IMAGES)) or int(count) > MAX_SPLIT_IMAGES:
            raise click.BadParameter(f"split {name!r}: at most {MAX_SPLIT_IMAGES:,} images per split, got {count}",
                                     param_hint="--splits")
        splits[name] = int(count)
    return splits


def _parse_size(value: str) -> tuple[int, int]:
    width, _, height = value.lower().partition("x")
    try:
        size = int(width), int(height or width)
    except ValueError as err:
        raise click.BadParameter(f"expected WIDTH or WIDTHxHEIGHT, got {value!r}", param_hint="--size") from err
    if not all(32 <= side <= MAX_SIDE for side in size):
        raise click.BadParameter(f"each side must be 32 to {MAX_SIDE} px, got {value!r}", param_hint="--size")
    return size


def _parse_range(value: str, name: str = "--instances") -> tuple[int, int]:
    low, _, high = value.partition("-")
    try:
        result = int(low), int(high or low)
    except ValueError as err:
        raise click.BadParameter(f"expected MIN-MAX, got {value!r}", param_hint=name) from err
    if not 1 <= result[0] <= result[1] <= MAX_INSTANCES:
        raise click.BadParameter(f"need 1 <= MIN <= MAX <= {MAX_INSTANCES} people per image, got {value!r}",
                                 param_hint=name)
    return result


def _parse_numbers(value: str, name: str, form: str = "comma-separated numbers", count: int | None = None
                   ) -> tuple[float, ...]:
    """``value`` as comma-separated finite numbers (exactly ``count`` of them when given), else a BadParameter
    naming option ``name`` and the expected ``form``."""
    try:
        numbers = tuple(float(v) for v in value.split(","))
    except ValueError:
        numbers = ()
    if not numbers or not all(math.isfinite(v) for v in numbers) or (count is not None and len(numbers) != count):
        raise click.BadParameter(f"expected {form}, got {value!r}", param_hint=name)
    return numbers


def _parse_occlusion(preset: str, value: str | None) -> tuple[float, float] | None:
    """The occlusion range of ``--occlusion PRESET`` or ``--occlusion-range LO,HI`` (one line and exit 2 when
    malformed: two finite numbers with 0 <= LO <= HI <= 1)."""
    if value is None:
        return OCCLUSION_PRESETS[preset]
    if preset != "none":
        raise UserError("give --occlusion or --occlusion-range, not both")
    parts = value.split(",")
    try:
        low, high = (float(v) for v in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high)):
        raise UserError(f"--occlusion-range: expected LO,HI, two numbers in [0, 1], got {value!r}")
    if not 0 <= low <= high <= 1:
        raise UserError(f"--occlusion-range: need 0 <= LO <= HI <= 1 (hidden fractions), got {value!r}")
    return low, high


def _parse_scale(value: str) -> tuple[float, float]:
    parts = value.split("-")
    try:
        low, high = float(parts[0]), float(parts[-1])
    except ValueError as err:
        raise click.BadParameter(f"expected MIN-MAX shares of the canvas height, got {value!r}",
                                 param_hint="--scale") from err
    if len(parts) > 2 or not 0 < low <= high <= 2:
        raise click.BadParameter(f"need 0 < MIN <= MAX <= 2, got {value!r}", param_hint="--scale")
    return low, high


@click.command("build-dataset", cls=Command)
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder, or an fsspec URL such as s3://bucket/prefix (docs/storage.md).")
@click.option(
    "--preset",
    type=click.Choice(list(BUILD_PRESETS)),
    default=None,
    help="Defaults for a published dataset's statistics; options given on the command line win. him-100k: "
    "train=100000 images at 640 px, JPEG composites, 2-5 people weighted to HIM-100K's mean of 3.26 per image.",
)
@click.option(
    "--splits",
    default="train=64,test=16",
    show_default=True,
    help="Images per split, as NAME=COUNT pairs separated by commas (at most 10,000,000 images and 1,000,000 shards "
    "per split).",
)
@click.option("--size", default="1024", show_default=True, help="Canvas size WIDTH or WIDTHxHEIGHT in pixels.")
@click.option("--instances", default="2-5", show_default=True, help="People per image MIN-MAX (I-HIM50K uses 2-5).")
@click.option(
    "--instance-weights", default=None,
    help="Comma-separated weights for each count in MIN..MAX (non-negative, not all zero).",
)
@click.option(
    "--fg",
    "fg_sources",
    multiple=True,
    default=("embedded",),
    show_default=True,
    help="Foreground source: 'embedded' (procedural people, offline) or a folder with fg/+alpha/, "
    "original/+alpha/ (P3M) or RGBA PNG cut-outs. Repeat to mix sources.",
)
@click.option(
    "--bg",
    "bg_sources",
    multiple=True,
    default=("embedded",),
    show_default=True,
    help="Background source: 'embedded' (scikit-image photos + procedural textures) or a folder of photos "
    "(searched recursively). Repeat to mix.",
)
@click.option(
    "--scale", default="0.45-0.95", show_default=True, help="Person height as a share of the canvas, MIN-MAX."
)
@click.option(
    "--min-visible",
    default=0.7,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Reject placements where a person keeps less than this share of its own area visible (the rule when "
    "no --occlusion is given).",
)
@click.option(
    "--occlusion",
    type=click.Choice(list(OCCLUSION_PRESETS)),
    default="none",
    show_default=True,
    help="How hidden the most-hidden person of each image is, as MaGGIe's benchmark levels: easy = no overlap, "
    "medium = 5-50% hidden, hard = 50-85% hidden (placement puts people in front of others to get there). none: "
    "I-HIM50K's rule instead (--min-visible).",
)
@click.option(
    "--occlusion-range",
    default=None,
    metavar="LO,HI",
    help="Like --occlusion, with the range of the hidden fraction of the most-hidden person given, e.g. 0.3,0.6 "
    "(every person keeps at least 1-HI of itself visible).",
)
@click.option(
    "--max-attempts",
    default=40,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Placement tries per person before it is dropped (each try is decided at 1/4 resolution).",
)
@click.option(
    "--min-in-frame",
    default=0.6,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Reject placements where less than this share of the person's cut-out lies inside the frame.",
)
@click.option(
    "--flip-prob", default=0.5, show_default=True, type=click.FloatRange(0, 1),
    help="Chance that a person is mirrored left-right.",
)
@click.option(
    "--jitter",
    default="0.15,0.15,0.2,8",
    show_default=True,
    help="Colour jitter of each person: brightness, contrast and saturation (relative amplitudes) and hue (degrees), "
    "B,C,S,H; 0,0,0,0 turns it off.",
)
@click.option(
    "--fg-max-side", default=1280, show_default=True, type=click.IntRange(16, 8192),
    help="Longest side, in pixels, a foreground cut-out is prepared at (never more than it can be drawn at).",
)
@click.option(
    "--png-compression", default=1, show_default=True, type=click.IntRange(0, 9),
    help="zlib level of the PNGs written (mattes, and the composite with --image-format png): 1 is fastest; "
    "higher levels make smaller shards, slower.",
)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Build seed; same seed + sources = same bytes.")
@click.option("--images-per-shard", default=32, show_default=True, type=click.IntRange(min=1),
              help="Rows per Parquet shard.")
@workers_option("Worker processes (default: all cores).", short=True)
@engine_option("schedule shards on Ray")
@ray_address_option()
@click.option(
    "--fg-cache",
    "fg_cache",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder of the cache of estimated foreground colours (photo + alpha sources such as P3M), shared by all "
    "workers and builds; keyed by the files' content, never changes the output. "
    "[default: $HIMBENCH_CACHE/fg, else ~/.cache/himbench/fg]",
)
@click.option("--no-fg-cache", is_flag=True, help="Estimate foreground colours in each worker, with no on-disk cache.")
@click.option("--store-layers", is_flag=True, help="Also store each person's foreground colours and the background.")
@click.option(
    "--image-format",
    type=click.Choice(["png", "jpg"]),
    default="png",
    show_default=True,
    help="How the composite is stored. png: lossless, so the ground truth is exact (the compositing equation holds "
    "to 8-bit rounding). jpg: JPEG, as I-HIM50K and HIM-2K ship their images; lossy, faster to write, and about "
    "3.8x smaller shards at 1024 px with quality 95. The mattes are 8-bit PNG either way.",
)
@click.option(
    "--jpeg-quality",
    default=None,
    type=click.IntRange(1, 100),
    help="JPEG quality of the composite with --image-format jpg.  [default: 95]",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Write into an --out that holds another build or other files, instead of refusing. Only the files a build "
    "writes (data/<split>-*.parquet shards, README.md, build_config.json, build_report.json) are replaced; "
    "anything else in the folder is left alone.",
)
@no_progress_option()
@click.option("--video", is_flag=True, help="Build clips instead of images (V-HIM style; the --splits counts are "
              "clips, --images-per-shard is clips per shard, default 4). See docs/video.md.")
@click.option("--frames", default=None, type=click.IntRange(1, 1000),
              help="Frames per clip with --video.  [default: 30]")
@storage_options_option()
def command(
    out_dir,
    preset,
    splits,
    size,
    instances,
    instance_weights,
    fg_sources,
    bg_sources,
    scale,
    min_visible,
    occlusion,
    occlusion_range,
    max_attempts,
    seed,
    images_per_shard,
    workers,
    engine,
    ray_address,
    fg_cache,
    no_fg_cache,
    store_layers,
    image_format,
    jpeg_quality,
    min_in_frame,
    flip_prob,
    jitter,
    fg_max_side,
    png_compression,
    overwrite,
    no_progress,
    video,
    frames,
    storage_options=None,
) -> None:
    """Composite person cut-outs onto backgrounds into HIM-100K-style Parquet shards.

    The output folder loads with `datasets.load_dataset(OUT)` and carries a dataset card (README.md), the resolved
    build_config.json and a build_report.json. Interrupted builds resume: run the same command again and finished
    shards are kept, unless a --fg/--bg folder changed since (files added, removed, resized or touched): that resume
    is refused (--overwrite rebuilds). Bad source files (and cut-outs too thin to be drawn as people) are reported
    and skipped; images that get fewer people than drawn for them are counted in build_report.json. Foreground
    colours of photo + alpha sources (P3M) are estimated once and cached (--fg-cache); the cache never changes the
    output bytes.

    --out, --fg and --bg also take fsspec URLs (s3://bucket/prefix, with --storage-options): the shards are put
    straight into the store, and URL sources are copied into a local cache first (docs/storage.md).

    \b
    Examples:
      himbench build-dataset --out data/him-embedded
      himbench build-dataset --out data/him-p3m --fg ../shared/realdata/P3M/demo/imgs --fg embedded --size 640
      himbench build-dataset --out data/him-jpg --image-format jpg      # JPEG composites, as I-HIM50K
      himbench build-dataset --out data/him-hard --occlusion hard --size 640   # 50-85% hidden
      himbench build-dataset --out data/him-100k --preset him-100k   # HIM-100K's size and 3.26 people per image
    """
    from concurrent.futures.process import BrokenProcessPool

    from himbench.build_config import BuildConfig
    from himbench.synthesis.build import build_dataset

    if preset is not None:
        given = _preset_values(preset)
        splits = given.get("splits", splits)
        size = given.get("size", size)
        instances = given.get("instances", instances)
        instance_weights = given.get("instance_weights", instance_weights)
        image_format = given.get("image_format", image_format)
    if no_fg_cache and fg_cache:
        raise click.BadParameter("give --fg-cache or --no-fg-cache, not both", param_hint="--no-fg-cache")
    if jpeg_quality is not None and image_format != "jpg":
        raise click.BadParameter("applies to --image-format jpg only (png is lossless)", param_hint="--jpeg-quality")
    occlusion_limits = _parse_occlusion(occlusion, occlusion_range)
    if occlusion_limits is not None and given_on_command_line(click.get_current_context(), "min_visible"):
        raise UserError("--min-visible does not apply with --occlusion/--occlusion-range (the range's HI bounds how "
                         "hidden anyone is)")
    width, height = _parse_size(size)
    low, high = _parse_range(instances)
    scale_min, scale_max = _parse_scale(scale)
    split_counts = _parse_splits(splits)
    weights = _parse_numbers(instance_weights, "--instance-weights") if instance_weights else None
    brightness, contrast, saturation, hue_degrees = _parse_numbers(
        jitter, "--jitter", "four comma-separated numbers B,C,S,H", count=4
    )
    video_build = bool(video or frames is not None)
    try:
        config = BuildConfig(
            splits=split_counts,
            width=width,
            height=height,
            seed=seed,
            images_per_shard=images_per_shard,
            min_instances=low,
            max_instances=high,
            instance_weights=weights,
            scale_min=scale_min,
            scale_max=scale_max,
            min_visible=min_visible,
            max_attempts=max_attempts,
            # A URL source is recorded as its URL (the build stages it on every node); a video build reads a
            # local copy.
            fg_sources=tuple(str(staged(s, storage_options)) if video_build else s for s in fg_sources),
            bg_sources=tuple(str(staged(s, storage_options)) if video_build else s for s in bg_sources),
            store_layers=store_layers,
            image_format=image_format,
            jpeg_quality=95 if jpeg_quality is None else jpeg_quality,
            min_in_frame=min_in_frame,
            flip_prob=flip_prob,
            brightness=brightness,
            contrast=contrast,
            saturation=saturation,
            hue_degrees=hue_degrees,
            fg_max_side=fg_max_side,
            png_compression=png_compression,
            occlusion_range=occlusion_limits,
        )
        if (video or frames is not None) and "://" in str(out_dir):
            raise UserError(f"{out_dir}: --video builds write to a local folder only (object storage: image builds)")
        if video or frames is not None:
            return _build_video(config, out_dir, frames, workers, overwrite, engine)
        report = build_dataset(
            config,
            out_dir,
            workers=workers,
            overwrite=overwrite,
            progress=not no_progress,
            engine=engine,
            ray_address=ray_address,
            fg_cache=False if no_fg_cache else fg_cache,
            storage_options=storage_options,
        )
    except ValueError as err:  # a BuildConfig field out of range (an InputError, a ValueError too, is the same)
        raise UserError(str(err)) from err
    except (ImportError, ConnectionError) as err:
        raise click.ClickException(str(err)) from err
    except BrokenProcessPool as err:
        raise click.ClickException(
            f"a worker process died (killed for memory?); the finished shards in {out_dir} are kept: run the same "
            "command again to resume, with fewer --workers if memory is short"
        ) from err
    summary = report.to_dict()
    click.echo(
        f"built {summary['num_images']} images in {summary['num_shards']} shards "
        f"({summary['resumed_shards']} kept from an earlier run) -> {out_dir}"
    )
    fewer = summary["fewer_people"]
    if fewer["images"]:
        reasons = "; ".join(f"{n} {reason}" for reason, n in fewer["people_dropped"].items())
        click.echo(
            f"{fewer['images']} image(s) got fewer people than drawn for them ({fewer['below_min_instances']} fewer "
            f"than --instances asks at least): people left out: {reasons} (see build_report.json)",
            err=True,
        )
    if report.occlusion_out_of_range:
        click.echo(
            f"{report.occlusion_out_of_range} image(s) could not be placed with their most-hidden person in the "
            "occlusion range and were kept with the closest placement found (see the occlusion column and "
            "build_report.json)",
            err=True,
        )
    if report.problems:
        click.echo(f"skipped {len(report.problems)} bad source file(s):", err=True)
        for problem in report.problems[:20]:
            click.echo(f"  {problem}", err=True)
        if len(report.problems) > 20:
            click.echo(f"  ... and {len(report.problems) - 20} more (see build_report.json)", err=True)


def _preset_values(preset: str) -> dict[str, str]:
    """The preset's values for the options the command line did not give."""
    context = click.get_current_context()
    return {name: value for name, value in BUILD_PRESETS[preset].items()
            if not given_on_command_line(context, name)}


def _build_video(config, out_dir, frames, workers, overwrite, engine) -> None:
    """The --video build (issue 23): clips from :func:`himbench.synthesis.video.build_video_dataset`."""
    from dataclasses import replace

    from himbench.synthesis.video import VideoConfig, build_video_dataset

    if frames is not None and not click.get_current_context().params.get("video"):
        raise UserError("--frames applies to --video builds only")
    if engine != "local":
        raise UserError("--video builds run on the local engine only")
    if not given_on_command_line(click.get_current_context(), "images_per_shard"):  # a clip: tens of images
        config = replace(config, images_per_shard=4)
    video = VideoConfig(config, frames=30 if frames is None else frames)
    report = build_video_dataset(video, out_dir, workers=workers, overwrite=overwrite)
    click.echo(f"built {report['num_clips']} clips ({report['num_frames']} frames) in {report['num_shards']} shards "
               f"({report['resumed_shards']} kept from an earlier run) -> {out_dir}")
    if report["occlusion_out_of_range"]:
        click.echo(f"{report['occlusion_out_of_range']} clip(s) could not be placed within the occlusion rules and "
                   "were kept with the closest placement found (see the occlusion column)", err=True)
    for problem in report["problems"][:20]:
        click.echo(f"  skipped: {problem}", err=True)
