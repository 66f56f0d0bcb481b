"""The Hugging Face dataset card (README.md with YAML ``configs:``) of a built dataset, filled with real statistics."""

from __future__ import annotations

import json
import shlex
from collections import Counter
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from himbench.build_config import ENGINE_VERSION, OCCLUSION_PRESETS, BuildConfig
from himbench.io.atomic import atomic_write_text
from himbench.shards import ShardFolder

__all__ = ["card_statistics", "command_line", "occlusion_histogram", "render_dataset_card", "url_load_text",
           "write_dataset_card"]

_TEMPLATE = Path(__file__).resolve().parents[2] / "data_cards" / "him_synthetic.md"


def _template_text() -> str:
    if _TEMPLATE.is_file():
        return _TEMPLATE.read_text()
    # Installed without the repository's data_cards/ folder: use the copy packaged with himbench.
    from importlib.resources import files

    return files("himbench").joinpath("assets/him_synthetic.md").read_text()


def card_statistics(out_dir: str | Path) -> dict:
    """Statistics read back from the shards themselves (so a resumed build reports what is really on disk)."""
    stats: dict = {"splits": {}, "instances": Counter(), "unknown_fraction_sum": 0.0, "num_images": 0,
                   "occlusion": [], "worst_occlusion": []}
    fg_sources: set[str] = set()
    bg_sources: set[str] = set()
    folder = ShardFolder(out_dir)
    for path in folder.shards():
        split = folder.split_of(path)
        table = folder.read_columns(path, ("num_instances", "unknown_fraction", "fg_sources", "bg_source"))
        counts = table["num_instances"]
        stats["splits"].setdefault(split, {"images": 0, "instances": 0, "shards": 0})
        stats["splits"][split]["images"] += len(counts)
        stats["splits"][split]["instances"] += sum(counts)
        stats["splits"][split]["shards"] += 1
        stats["instances"].update(counts)
        stats["unknown_fraction_sum"] += sum(table["unknown_fraction"])
        stats["num_images"] += len(counts)
        for names in table["fg_sources"]:
            fg_sources.update(names)
        bg_sources.update(table["bg_source"])
        if _has_column(path, "occlusion"):  # shards written before the column have none
            for fractions in folder.read_columns(path, ("occlusion",))["occlusion"]:
                stats["occlusion"] += fractions or []
                if fractions:
                    stats["worst_occlusion"].append(max(fractions))
    stats["distinct_foregrounds"] = len(fg_sources)
    stats["distinct_backgrounds"] = len(bg_sources)
    stats["mean_unknown_fraction"] = stats.pop("unknown_fraction_sum") / max(stats["num_images"], 1)
    return stats


def _has_column(path: Path, name: str) -> bool:
    import pyarrow.parquet as pq

    return name in pq.read_schema(path).names


# Bins of the occlusion histogram: exactly 0 (nobody in front), then MaGGIe's boundaries (5%, 50%, 85%) among tenths.
_OCCLUSION_EDGES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0)


def occlusion_histogram(fractions: list[float]) -> list[tuple[str, int]]:
    """(bin label, count) of hidden fractions: "0" for exactly 0, then (0, 5%), [5%, 10%), ..., [85%, 100%]."""
    values = np.asarray(fractions, np.float64)
    rows = [("0 (not hidden)", int((values == 0).sum()))]
    edges = _OCCLUSION_EDGES
    for k, (low, high) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        last = k == len(edges) - 2
        inside = (values > low if k == 0 else values >= low) & (values <= high if last else values < high)
        opening = "(" if k == 0 else "["
        rows.append((f"{opening}{100 * low:g}%, {100 * high:g}%{']' if last else ')'}", int(inside.sum())))
    return rows


def _occlusion_section(config: BuildConfig, stats: dict) -> str:
    """The card's text on how hidden the people are: the build's rule and a text histogram of the occlusion column
    (every person, and the most-hidden person of each image)."""
    occlusion = config.occlusion_range
    if occlusion is None:
        rule = (f"Placement rule: every person keeps at least {100 * config.min_visible:g}% of its own in-frame area "
                "visible (I-HIM50K's rule).")
    else:
        preset = next((name for name, limits in OCCLUSION_PRESETS.items() if limits == tuple(occlusion)), None)
        named = f" (`--occlusion {preset}`)" if preset else ""
        rule = (f"Placement rule{named}: the most-hidden person of each image is {100 * occlusion[0]:g}% to "
                f"{100 * occlusion[1]:g}% hidden; people were placed in front of others to reach it.")
    if not stats["occlusion"]:
        return rule + " These shards have no `occlusion` column (written before it existed)."
    people, worst = stats["occlusion"], stats["worst_occlusion"]
    lines = [rule, "", "Hidden fraction of each person (the `occlusion` column), and of the most-hidden person of each "
             "image:", "", "| hidden | people | images (most-hidden person) | |", "| --- | ---: | ---: | --- |"]
    scale = max(len(worst), 1)
    for (label, n_people), (_, n_images) in zip(occlusion_histogram(people), occlusion_histogram(worst), strict=True):
        bar = "#" * round(40 * n_images / scale)
        lines.append(f"| {label} | {n_people} | {n_images} | `{bar}` |" if bar else f"| {label} | {n_people} | "
                     f"{n_images} | |")
    return "\n".join(lines)


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def render_dataset_card(config: BuildConfig, stats: dict, num_problems: int, command: str, load_path: str) -> str:
    splits = list(config.splits)
    data_files = "\n".join(f"  - split: {s}\n    path: data/{s}-*.parquet" for s in splits if config.splits[s] > 0)
    rows = ["| split | images | instances | shards |", "| --- | ---: | ---: | ---: |"]
    for split, values in stats["splits"].items():
        rows.append(f"| {split} | {values['images']} | {values['instances']} | {values['shards']} |")
    rows += [
        "",
        f"Image size {config.width} x {config.height} px; {stats['distinct_foregrounds']} distinct cut-outs, "
        f"{stats['distinct_backgrounds']} distinct backgrounds; mean share of soft (unknown) pixels in the people: "
        f"{100 * stats['mean_unknown_fraction']:.1f}%.",
    ]
    total = max(stats["num_images"], 1)
    instance_rows = ["| people per image | images | share |", "| ---: | ---: | ---: |"]
    for count in sorted(stats["instances"]):
        n = stats["instances"][count]
        instance_rows.append(f"| {count} | {n} | {100 * n / total:.1f}% |")
    layer_columns = (
        "| `foregrounds`, `background` | List[Image], Image "
        "| each person's colours and the background (--store-layers) |\n"
        "| `amodal_alphas` | List[Image] | each person's own 8-bit alpha, hidden parts included (--store-layers) |"
        if config.store_layers
        else ""
    )
    values = {
        **_image_format_text(config),
        "pretty_name": "himbench synthetic human instance matting",
        "size_category": _size_category(stats["num_images"]),
        "data_files": data_files,
        "load_path": load_path,
        "first_split": next((s for s in splits if config.splits[s] > 0), splits[0]),
        "min_instances": config.min_instances,
        "max_instances": config.max_instances,
        "stats_table": "\n".join(rows),
        "instance_table": "\n".join(instance_rows),
        "occlusion_section": _occlusion_section(config, stats),
        "layer_columns": layer_columns,
        "command": command,
        "config_json": json.dumps(config.to_dict(), indent=2, sort_keys=True),
        "sources": ", ".join(f"`{s}`" for s in (*config.fg_sources, *config.bg_sources)),
        "num_problems": num_problems,
    }
    text = _template_text()
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def _image_format_text(config: BuildConfig) -> dict[str, str]:
    """What the card says about the stored composite: its format, and how exactly it meets the compositing equation."""
    equation = "`I = sum_i F_i vis_i + B (1 - sum_i vis_i)`"
    mattes = "the visible mattes of an image sum to at most 1 everywhere (himbench SPEC s.1)"
    if config.image_format == "jpg":
        return {
            "image_type": f"JPEG, quality {config.jpeg_quality}",
            "image_meaning": f"the composite as JPEG (quality {config.jpeg_quality}), as I-HIM50K ships its images; "
                             "lossy",
            "composite_note": (
                f"Image format: **JPEG** (`--image-format jpg --jpeg-quality {config.jpeg_quality}`). The composite "
                f"satisfied {equation} to within 8-bit rounding before it was encoded; the stored JPEG differs from "
                "it by the compression error (a few levels), while the mattes are exact 8-bit PNG and "
                f"{mattes}. Rebuild with the default `--image-format png` for lossless composites."
            ),
        }
    return {
        "image_type": "PNG",
        "image_meaning": "the composite, lossless so the compositing equation holds exactly",
        "composite_note": (
            f"Image format: **PNG** (lossless). The composite satisfies {equation} to within 8-bit rounding, and "
            f"{mattes}."
        ),
    }


def _number(value: float) -> str:
    # Shortest text that reads back as the same float, never in exponent form ("1e-05-0.8" would not parse as
    # a MIN-MAX range).
    return np.format_float_positional(float(value), trim="-")


def _options(config: BuildConfig) -> list[str]:
    """The `build-dataset` options that set ``config``'s fields, every one given (defaults may change)."""
    args = ["--splits", ",".join(f"{name}={count}" for name, count in config.splits.items())]
    args += ["--size", f"{config.width}x{config.height}", "--seed", str(config.seed)]
    args += ["--images-per-shard", str(config.images_per_shard)]
    args += ["--instances", f"{config.min_instances}-{config.max_instances}"]
    if config.instance_weights is not None:
        args += ["--instance-weights", ",".join(_number(w) for w in config.instance_weights)]
    args += ["--scale", f"{_number(config.scale_min)}-{_number(config.scale_max)}"]
    occlusion = config.occlusion_range
    if occlusion is None:
        args += ["--min-visible", _number(config.min_visible)]
    else:  # the range replaces --min-visible (the command refuses both)
        preset = next((name for name, limits in OCCLUSION_PRESETS.items() if limits == tuple(occlusion)), None)
        args += ["--occlusion", preset] if preset else ["--occlusion-range", ",".join(_number(v) for v in occlusion)]
    args += ["--max-attempts", str(config.max_attempts)]
    args += ["--min-in-frame", _number(config.min_in_frame), "--flip-prob", _number(config.flip_prob)]
    jitter = (config.brightness, config.contrast, config.saturation, config.hue_degrees)
    args += ["--jitter", ",".join(_number(v) for v in jitter)]
    args += ["--fg-max-side", str(config.fg_max_side), "--png-compression", str(config.png_compression)]
    for source in config.fg_sources:
        args += ["--fg", source]
    for source in config.bg_sources:
        args += ["--bg", source]
    if config.store_layers:
        args.append("--store-layers")
    if config.image_format != "png":  # png (the default) ignores the JPEG quality, and so does its fingerprint
        args += ["--image-format", config.image_format, "--jpeg-quality", str(config.jpeg_quality)]
    return args


def _as_the_command_builds(config: BuildConfig) -> BuildConfig:
    """The config `build-dataset` makes from :func:`_options` (its types: JSON tells 1 from 1.0, and so does the
    fingerprint). Every field has an option; a value of another JSON type than the option gives (an int scale) cannot be
    written, and :func:`command_line` names it."""
    weights = config.instance_weights
    return replace(
        BuildConfig(),
        splits={name: int(count) for name, count in config.splits.items()},
        width=int(config.width),
        height=int(config.height),
        seed=int(config.seed),
        images_per_shard=int(config.images_per_shard),
        min_instances=int(config.min_instances),
        max_instances=int(config.max_instances),
        instance_weights=None if weights is None else tuple(float(w) for w in weights),
        scale_min=float(config.scale_min),
        scale_max=float(config.scale_max),
        min_visible=float(config.min_visible),
        max_attempts=int(config.max_attempts),
        min_in_frame=float(config.min_in_frame),
        flip_prob=float(config.flip_prob),
        brightness=float(config.brightness),
        contrast=float(config.contrast),
        saturation=float(config.saturation),
        hue_degrees=float(config.hue_degrees),
        fg_max_side=int(config.fg_max_side),
        png_compression=int(config.png_compression),
        fg_sources=tuple(config.fg_sources),
        bg_sources=tuple(config.bg_sources),
        store_layers=bool(config.store_layers),
        occlusion_range=None if config.occlusion_range is None else tuple(float(v) for v in config.occlusion_range),
        **(
            {"image_format": str(config.image_format), "jpeg_quality": int(config.jpeg_quality)}
            if config.image_format != "png"
            else {}
        ),
    )


def command_line(config: BuildConfig) -> str:
    """The `himbench build-dataset` command that rebuilds ``config`` with the same fingerprint, then comment lines:
    the fingerprint, and what the command cannot reproduce when the build was configured through the Python API."""
    lines = [" ".join(["himbench build-dataset --out DIR", *map(shlex.quote, _options(config))])]
    lines.append(f"# fingerprint {config.fingerprint()} (himbench synthesis engine {ENGINE_VERSION})")
    sources = (*config.fg_sources, *config.bg_sources)
    if any(s != "embedded" and "://" not in s and not Path(s).is_absolute() for s in sources):  # a URL is not relative
        lines.append("# run it from the folder the build ran in: --fg/--bg folders enter the fingerprint as written")
    # Compared on the fingerprinted fields: a setting the build's bytes ignore (the JPEG quality of a png build) is
    # not worth a warning.
    built, rebuilt = config.fingerprinted(), _as_the_command_builds(config).fingerprinted()
    missing = [
        f"{f.name}={json.dumps(built[f.name])}"
        for f in fields(BuildConfig)
        if f.name in built
        and json.dumps(built[f.name], sort_keys=True) != json.dumps(rebuilt.get(f.name), sort_keys=True)
    ]
    if missing:
        lines.append(f"# not reproducible by this command: built through the Python API with {', '.join(missing)}")
    return "\n".join(lines)


def write_dataset_card(out_dir: str | Path, config: BuildConfig, report) -> Path:
    out_dir = Path(out_dir)
    stats = card_statistics(out_dir)
    text = render_dataset_card(config, stats, len(report.problems), command_line(config), str(out_dir))
    return atomic_write_text(out_dir / "README.md", text)


def url_load_text(text: str, url: str, config: BuildConfig) -> str:
    """``text`` (a rendered card) with its "Load it" lines for a build stored at ``url`` (object storage): the
    Parquet builder reads the shards there, with the same storage options as the build (credentials, endpoint)."""
    split = next((s for s in config.splits if config.splits[s] > 0), next(iter(config.splits)))
    files = ", ".join(f'"{s}": "{url}/data/{s}-*.parquet"' for s in config.splits if config.splits[s] > 0)
    lines = (
        f'ds = load_dataset("parquet", data_files={{{files}}},\n'
        f"                  storage_options={{...}})  # as for the build: credentials, endpoint_url, ...\n"
    )
    text = text.replace(f'ds = load_dataset("{url}")          # no loading script needed\n', lines)
    local = f'`himbench.data.HIMShardDataset("{url}", "{split}")`'
    return text.replace(local, f'`himbench.data.HIMShardDataset(LOCAL_COPY, "{split}")` (copy {url} first)')
