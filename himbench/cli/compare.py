"""``himbench compare EVAL_A EVAL_B``: paired bootstrap of the difference between two methods, image by image.

Reads each evaluation folder's ``per_image.json`` (written by ``himbench evaluate``), matches the images by stem,
and resamples them jointly (:func:`himbench.metrics.bootstrap.paired_bootstrap`). Prints one line per metric:
both values, the difference A - B, its percentile interval and the two-sided p-value; ``--out`` also writes JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from himbench.cli.errors import Command, UserError
from himbench.metrics.table import HEADLINE_METRIC

__all__ = ["command"]

PER_IMAGE = "per_image.json"


def _read_records(path: Path) -> tuple[str, list]:
    """(the per_image.json path as shown, its records); InputError naming the file when it is missing or bad."""
    from himbench.io import InputError, max_file_bytes, read_json

    file = path / PER_IMAGE if path.is_dir() else path
    if not file.exists():
        raise InputError(file, "no such file (expected an evaluation folder written by `himbench evaluate`, "
                               f"holding {PER_IMAGE})")
    # per_image.json grows with the test set, so it gets the file limit of images, not the small JSON default
    return str(file), read_json(file, max_bytes=max_file_bytes())


def _p_text(p_value: float, resamples: int) -> str:
    # p is a share of resamples: 0 only says "below 1 / resamples"
    return f"<{1.0 / resamples:.2g}" if p_value == 0.0 else f"{p_value:.3f}"


def format_comparison(results: list[dict], a_name: str, b_name: str) -> str:
    """The plain-text table ``compare`` prints."""
    first = results[0]
    level = f"{100 * first['level']:g}% CI"
    lines = [
        f"A: {a_name}",
        f"B: {b_name}",
        f"{first['num_images']} images, paired bootstrap ({first['resamples']} resamples, seed {first['seed']})",
    ]
    header = ["metric", "A", "B", "A - B", level, "p"]
    rows = [
        [r["key"], f"{r['value_a']:.3f}", f"{r['value_b']:.3f}", f"{r['difference']:+.3f}",
         f"[{r['low']:+.3f}, {r['high']:+.3f}]", _p_text(r["p_value"], r["resamples"])]
        for r in results
    ]
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    lines += [line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]
    return "\n".join(lines)


@click.command(name="compare", cls=Command)
@click.argument("eval_a", type=click.Path(path_type=Path))
@click.argument("eval_b", type=click.Path(path_type=Path))
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    default=(HEADLINE_METRIC,),
    show_default=True,
    help="Summary number to compare (IMQ_mad@0.5, RQ@0.75, MQ_conn@0.5, PQ@0.5, inst_SAD, mean_iou, ...); repeat "
    "the option for several.",
)
@click.option("--bootstrap", "resamples", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Bootstrap resamples of the images.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the resampling.")
@click.option("--level", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Confidence level of the interval.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the comparison as JSON to this file.")
def command(eval_a: Path, eval_b: Path, metrics: tuple[str, ...], resamples: int, seed: int, level: float,
            out: Path | None) -> None:
    """Compare two methods scored on the same images: the difference A - B of a summary number, with a paired
    bootstrap interval over images and a two-sided p-value.

    EVAL_A and EVAL_B are evaluation folders written by `himbench evaluate` (or their per_image.json files). Both
    must have scored the same images; the images are resampled jointly, and IMQ/RQ/MQ/PQ are recomputed from the
    resampled images' sums (ratios of sums, as the evaluation computes them). p is twice the share of resampled
    differences on the other side of 0 (1 when the difference is exactly 0); its resolution is 1/--bootstrap.
    """
    from himbench.io import atomic_write_text
    from himbench.metrics.bootstrap import image_table, paired_bootstrap

    a_name, a_records = _read_records(eval_a)
    b_name, b_records = _read_records(eval_b)
    table_a, table_b = image_table(a_records, a_name), image_table(b_records, b_name)
    results = [paired_bootstrap(table_a, table_b, key, resamples, seed, level) for key in dict.fromkeys(metrics)]
    click.echo(format_comparison(results, a_name, b_name))
    if out is not None:
        document = {"a": a_name, "b": b_name, "method": "paired percentile bootstrap over images",
                    "comparisons": results}
        try:
            atomic_write_text(out, json.dumps(document, indent=2, allow_nan=False) + "\n")
        except OSError as err:
            raise UserError(f"{out}: cannot write ({err.strerror or err})") from err
        click.echo(f"wrote {out}")
