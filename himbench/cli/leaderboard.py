"""``himbench leaderboard``: render leaderboard/results.csv as Markdown, LaTeX and plots (a thin shell over
:func:`himbench.leaderboard.write_leaderboard`)."""

from __future__ import annotations

from pathlib import Path

import click

from himbench.cli.errors import Command, UserError
from himbench.cli.options import device_option
from himbench.metrics.table import HEADLINE_METRIC

__all__ = ["command"]


@click.command(name="leaderboard", cls=Command)
@click.option("--csv", "csv_path", default="leaderboard/results.csv", show_default=True,
              type=click.Path(dir_okay=False), help="The results CSV written by `himbench bench` (the source).")
@click.option("--out", "out_dir", default="leaderboard", show_default=True, type=click.Path(file_okay=False),
              help="Folder for README.md, leaderboard.tex and the PNG plots.")
@click.option("--photo", default=None,
              help="Real photograph for the qualitative grid (run through every method of the CSV). Default: the "
                   "group photo shipped with himbench (himbench/assets/group/images/test/p3m_group.jpg), three real "
                   "P3M portraits (MIT) composited onto a beach photo (pymatting) by `himbench build-dataset`, with "
                   "its ground truth. A photo in the HIM-2K layout (ROOT/images/<split>/<stem>.jpg + "
                   "ROOT/alphas/<split>/<stem>/) gets a ground-truth panel and its mattes as guidance masks.")
@click.option("--photo-masks", default=None, type=click.Path(exists=True, file_okay=False),
              help="Folder of <k>.png masks for --photo, given to mask-guided methods. Default: the photo's "
                   "ground-truth mattes when it has them (an oracle, as in the tables), else the masks of the "
                   "segmenter a two-stage method declares (seg-refine's seg-tiny: shipped or the CSV's checkpoint), "
                   "a real two-stage pipeline.")
@click.option("--no-qualitative", is_flag=True, help="Skip the qualitative grid (it runs every method once).")
@click.option("--metric", default=HEADLINE_METRIC, show_default=True, help="Accuracy axis of the scatter plot.")
@device_option(default="cpu", help="Device for the qualitative grid's methods.")
@click.option("--published", "published_csv", default="leaderboard/published.csv", show_default=True,
              type=click.Path(dir_okay=False),
              help="Numbers printed in papers, shown beside the measured rows (marked; skipped if the file is absent).")
@click.option("--max-rows", default=None, type=click.IntRange(min=0),
              help="Rows per table at most (0: every row). A longer table shows the best by IMQ_mad@0.5 plus each "
                   "column's best row and says how many it left out; results.csv keeps them all. [default: 500]")
@click.option("--plot-rows", default=None, type=click.IntRange(min=1),
              help="Methods the plots label or draw as lines, and panels of the qualitative grid: the best by "
                   "--metric. [default: 15]")
@click.option("--html", "html_out", default=None, type=click.Path(dir_okay=False),
              help="Also write ONE self-contained HTML page here (sortable tables, published vs measured rows, the "
                   "plots and qualitative grid embedded, the command behind each row).")
def command(csv_path, out_dir, photo, photo_masks, no_qualitative, metric, device, published_csv, max_rows, plot_rows,
            html_out) -> None:
    """Render the leaderboard: OUT/README.md (Markdown tables), OUT/leaderboard.tex (LaTeX), and plots
    OUT/accuracy_vs_latency.png, OUT/latency_vs_instances.png, OUT/qualitative.png. Best values are bold, from
    each metric's direction (IMQ/RQ/MQ higher, errors/latency/memory lower). Published numbers (--published) get
    their own "Compare with the papers" tables where each row is marked published or measured; --html writes the
    same as one web page. A table of more than --max-rows rows shows the best by IMQ_mad@0.5 plus each column's
    best row, and the plots and grid show the best --plot-rows methods, so a CSV of 100,000 rows renders in
    seconds. Every cell is escaped for its format. A video results CSV (`himbench bench` on clips,
    leaderboard/video.csv) renders as OUT/video.md instead: one table per clip set and MaGGIe's Table 7 beside."""
    from himbench.bench.results import read_results
    from himbench.leaderboard import DEFAULT_MAX_ROWS, DEFAULT_PLOT_ROWS, read_published, write_leaderboard
    from himbench.leaderboard.qualitative import default_photo

    try:
        rows = read_results(csv_path)
        published = read_published(published_csv) if published_csv and Path(published_csv).is_file() else []
    except ValueError as err:  # a malformed results or published CSV (MalformedResultsError, InputError)
        raise UserError(str(err)) from err
    if not rows:
        raise UserError(f"{csv_path}: no results (run `himbench bench` first)")
    from himbench.leaderboard.video import is_video_results

    if is_video_results(rows):  # leaderboard/video.csv (bench on clips): its own page, beside the image board
        from himbench.io import atomic_write_text
        from himbench.leaderboard.video import render_video_markdown

        target = Path(out_dir) / "video.md"
        atomic_write_text(target, render_video_markdown(rows, published))
        click.echo(f"wrote {target}")
        return
    grid_photo = None
    if not no_qualitative:
        grid_photo = Path(photo or default_photo())
        if not grid_photo.is_file():
            click.echo(f"note: {photo} not found; qualitative grid skipped", err=True)
            grid_photo = None
    written = write_leaderboard(
        rows, out_dir, csv_name=Path(csv_path).name, published_rows=published, metric=metric,
        max_rows=DEFAULT_MAX_ROWS if max_rows is None else (max_rows or None), plot_rows=plot_rows or DEFAULT_PLOT_ROWS,
        photo=grid_photo, photo_masks=photo_masks, device=device, html_out=html_out,
        on_error=lambda message: click.echo(f"error: {message}", err=True),
    )
    for path in written:
        click.echo(f"wrote {path}")
