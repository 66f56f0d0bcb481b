"""The Hugging Face dataset card (README.md with YAML ``configs:``) of a built dataset, filled with real statistics."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from himbench.io.atomic import atomic_write_text
from himbench.shards import list_shards
from himbench.synthesis.config import BuildConfig

__all__ = ["card_statistics", "command_line", "render_dataset_card", "write_dataset_card"]

_TEMPLATE = Path(__file__).resolve().parents[2] / "data_cards" / "him_synthetic.md"


def _template_text() -> str:
    if _TEMPLATE.is_file():
        return _TEMPLATE.read_text()
    # Installed without the repository's data_cards/ folder: use the copy packaged with himbench.
    from importlib.resources import files

    return files("himbench").joinpath("assets/him_synthetic.md").read_text()


def card_statistics(out_dir: str | Path) -> dict:
    """Statistics read back from the shards themselves (so a resumed build reports what is really on disk)."""
    import pyarrow.parquet as pq

    stats: dict = {"splits": {}, "instances": Counter(), "unknown_fraction_sum": 0.0, "num_images": 0}
    fg_sources: set[str] = set()
    bg_sources: set[str] = set()
    for path in list_shards(out_dir):
        split = path.name.split("-")[0]
        table = pq.read_table(path, columns=["num_instances", "unknown_fraction", "fg_sources", "bg_source"])
        counts = table.column("num_instances").to_pylist()
        stats["splits"].setdefault(split, {"images": 0, "instances": 0, "shards": 0})
        stats["splits"][split]["images"] += len(counts)
        stats["splits"][split]["instances"] += sum(counts)
        stats["splits"][split]["shards"] += 1
        stats["instances"].update(counts)
        stats["unknown_fraction_sum"] += sum(table.column("unknown_fraction").to_pylist())
        stats["num_images"] += len(counts)
        for names in table.column("fg_sources").to_pylist():
            fg_sources.update(names)
        bg_sources.update(table.column("bg_source").to_pylist())
    stats["distinct_foregrounds"] = len(fg_sources)
    stats["distinct_backgrounds"] = len(bg_sources)
    stats["mean_unknown_fraction"] = stats.pop("unknown_fraction_sum") / max(stats["num_images"], 1)
    return stats


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
        "| each person's colours and the background (--store-layers) |"
        if config.store_layers
        else ""
    )
    values = {
        "pretty_name": "himbench synthetic human instance matting",
        "size_category": _size_category(stats["num_images"]),
        "data_files": data_files,
        "load_path": load_path,
        "first_split": next((s for s in splits if config.splits[s] > 0), splits[0]),
        "min_instances": config.min_instances,
        "max_instances": config.max_instances,
        "stats_table": "\n".join(rows),
        "instance_table": "\n".join(instance_rows),
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


def command_line(config: BuildConfig) -> str:
    parts = ["himbench build-dataset --out DIR"]
    parts.append("--splits " + ",".join(f"{k}={v}" for k, v in config.splits.items()))
    parts.append(f"--size {config.width}x{config.height} --seed {config.seed}")
    parts.append(f"--instances {config.min_instances}-{config.max_instances}")
    parts += [f"--fg {s}" for s in config.fg_sources] + [f"--bg {s}" for s in config.bg_sources]
    if config.store_layers:
        parts.append("--store-layers")
    return " ".join(parts)


def write_dataset_card(out_dir: str | Path, config: BuildConfig, report) -> Path:
    out_dir = Path(out_dir)
    stats = card_statistics(out_dir)
    text = render_dataset_card(config, stats, len(report.problems), command_line(config), str(out_dir))
    return atomic_write_text(out_dir / "README.md", text)
