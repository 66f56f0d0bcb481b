"""``himbench leaderboard``: render leaderboard/results.csv as Markdown, LaTeX and plots."""

from __future__ import annotations

import os
from pathlib import Path

import click

__all__ = ["DATA_NOTES", "command", "default_photo", "photo_ground_truth", "qualitative_panels", "with_data_notes"]

_REALDATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "realdata"
# The qualitative grid's default photo: a group composited by `himbench build-dataset` from real P3M portraits (MIT)
# onto pymatting's beach photo, kept in the repository with its mattes in the HIM-2K layout (tests/data/realdata/
# group/PROVENANCE.txt says how it was made). Never a non-commercial photo: the rendered grid is committed.
GROUP_PHOTO = str(_REALDATA / "group" / "images" / "test" / "p3m_group.jpg")
# Fallback when the group folder is absent (a trimmed checkout): an MIT-licensed P3M portrait.
REPO_PHOTO = str(_REALDATA / "P3M" / "demo" / "imgs" / "original" / "p_51c916fc.jpg")


# What a reader must know about a data set's table that its name does not say (size, licence, what the ground truth
# is), printed under that table's heading in README.md.
DATA_NOTES: dict[str, str] = {
    "P3M-500-NP-sample": (
        "**Real photographs**: the 12 portraits of P3M's demo folder (JizhiziLi/P3M, MIT), one person each, at "
        "640 px on the long side, laid out as P3M-500-NP with trimaps (`tests/data/realdata/P3M-500-NP-sample`). "
        "The ground truth is the matte P3M ships with them, itself a published model's output: good pseudo ground "
        "truth, not a human annotation. The benchmark's own errors, in P3M's evaluator's units, are the `p3m_*` "
        "columns of results.csv and appear under \"Compare with the papers\". `mask-cf@trimap` solves closed-form "
        "matting on the benchmark's trimap; `oracle:gt` rows are handed masks made from the ground truth."
    ),
}


def with_data_notes(markdown: str, notes: dict[str, str] | None = None) -> str:
    """``markdown`` with each data set's note (:data:`DATA_NOTES`) under the heading of each of its tables."""
    notes = DATA_NOTES if notes is None else notes
    lines = markdown.split("\n")
    out = []
    for line in lines:
        out.append(line)
        for data, note in notes.items():
            if line.startswith(f"### {data} / "):
                out += ["", note]
    return "\n".join(out)


def default_photo() -> str:
    """The qualitative grid's photo when --photo is not given (see the comment above)."""
    return GROUP_PHOTO if Path(GROUP_PHOTO).is_file() else REPO_PHOTO


def photo_ground_truth(photo: str | os.PathLike) -> Path | None:
    """The mattes of a photo in the HIM-2K layout (``ROOT/images/<split>/<stem>.jpg`` beside
    ``ROOT/alphas/<split>/<stem>/<k>.png``), or None when it has none (a plain photo)."""
    photo = Path(photo)
    if photo.parent.parent.name != "images":
        return None
    folder = photo.parent.parent.parent / "alphas" / photo.parent.name / photo.stem
    return folder if folder.is_dir() and any(folder.glob("*.png")) else None


def _photo_masks(photo_masks: str | None, image, segmenter_checkpoint: str | None, device: str):
    """Guidance masks for mask-guided methods on the real photo, and a note saying where they came from."""
    import numpy as np

    from himbench.io import read_alpha

    if photo_masks:
        files = sorted(Path(photo_masks).glob("*.png"))
        if files:
            masks = np.stack([read_alpha(f, expected_shape=image.shape[:2]) >= 0.5 for f in files])
            return masks, f"masks from {Path(photo_masks).name}/"
    from himbench.checkpoints import load_registered_model
    from himbench.registry import default_checkpoint

    checkpoint = segmenter_checkpoint or default_checkpoint("seg-tiny")
    if checkpoint is None:
        return None, "no masks: pass --photo-masks or ship a seg-tiny checkpoint"
    segmenter, _ = load_registered_model("seg-tiny", checkpoint, device)
    alphas, _ = segmenter.predict_instances(image)
    return alphas >= 0.5, "masks from seg-tiny"


def _panel_rows(rows, limit: int | None, metric: str) -> list[dict]:
    """The first row of each distinct method, in CSV order; at most ``limit`` methods, the best-ranked ones
    (:func:`~himbench.leaderboard.rank_rows`) when the CSV has more: each panel runs a model."""
    from himbench.leaderboard import rank_rows

    first: dict[str, int] = {}
    for i, row in enumerate(rows):
        first.setdefault(row.get("method", "?"), i)
    if limit is None or len(first) <= limit:
        return [rows[i] for i in first.values()]
    chosen: dict[str, int] = {}
    for i in rank_rows(rows, metric):
        label = rows[i].get("method", "?")
        if label not in chosen:
            chosen[label] = first[label]
            if len(chosen) == limit:
                break
    return [rows[i] for i in sorted(chosen.values())]


def qualitative_panels(rows, image, photo_stem: str, photo_masks: str | None, device: str, on_error,
                       limit: int | None = None, metric: str = "IMQ_mad@0.5"):
    """One (title, alphas or None, note) per distinct method of the CSV (at most ``limit``, the best by ``metric``
    when there are more), each rebuilt from its ``spec`` column."""
    from himbench.guidance import GuidanceConfig, perturb_masks
    from himbench.leaderboard import method_spec
    from himbench.methods import create_method

    panels = []
    guide_cache: dict[str, tuple] = {}
    # looked up once, not once per mask-guided method (that rescanned every row per method)
    seg_ckpt = next((c for r in rows if (c := method_spec(r).get("seg_checkpoint"))), None)
    for row in _panel_rows(rows, limit, metric):
        label = row.get("method", "?")
        spec = method_spec(row)
        name = spec.pop("name", label.split("@")[0])
        try:
            method = create_method(name, **spec, device=device)
            masks, note = None, ""
            if method.needs_masks:
                if "base" not in guide_cache:
                    guide_cache["base"] = _photo_masks(photo_masks, image, seg_ckpt, device)
                masks, note = guide_cache["base"]
                if masks is None:
                    panels.append((label, None, note))
                    continue
                guidance = method.guidance or GuidanceConfig()
                masks = perturb_masks(masks, guidance, photo_stem)
            prediction = method.predict(image, masks)
            note = note + ("" if method.trained else (" · " if note else "") + "untrained")
            panels.append((label, prediction.alphas, note))
        except Exception as err:  # one method failing must not hide the others
            on_error(f"{label}: {type(err).__name__}: {err}")
            panels.append((label, None, f"failed: {type(err).__name__}"))
    return panels


@click.command(name="leaderboard")
@click.option("--csv", "csv_path", default="leaderboard/results.csv", show_default=True,
              type=click.Path(dir_okay=False), help="The results CSV written by `himbench bench` (the source).")
@click.option("--out", "out_dir", default="leaderboard", show_default=True, type=click.Path(file_okay=False),
              help="Folder for README.md, leaderboard.tex and the PNG plots.")
@click.option("--photo", default=None,
              help="Real photograph for the qualitative grid (run through every method of the CSV). Default: "
                   "tests/data/realdata/group/images/test/p3m_group.jpg, three real P3M portraits (MIT) composited "
                   "onto a beach photo (pymatting) by `himbench build-dataset`, with its ground truth. A photo in the "
                   "HIM-2K layout (ROOT/images/<split>/<stem>.jpg + ROOT/alphas/<split>/<stem>/) gets a ground-truth "
                   "panel and its mattes as guidance masks.")
@click.option("--photo-masks", default=None, type=click.Path(exists=True, file_okay=False),
              help="Folder of <k>.png masks for --photo, given to mask-guided methods. Default: the photo's "
                   "ground-truth mattes when it has them (an oracle, as in the tables), else the masks of the "
                   "seg-tiny segmenter (shipped or seg-refine's checkpoint), a real two-stage pipeline.")
@click.option("--no-qualitative", is_flag=True, help="Skip the qualitative grid (it runs every method once).")
@click.option("--metric", default="IMQ_mad@0.5", show_default=True, help="Accuracy axis of the scatter plot.")
@click.option("--device", default="cpu", show_default=True, help="Device for the qualitative grid's methods.")
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
    seconds. Every cell is escaped for its format."""
    from himbench.bench.results import MalformedResultsError, read_results
    from himbench.io import InputError, atomic_write_text, read_image
    from himbench.leaderboard import (
        DEFAULT_MAX_ROWS,
        DEFAULT_PLOT_ROWS,
        page_rows,
        plot_accuracy_vs_latency,
        plot_latency_vs_instances,
        plot_qualitative,
        read_published,
        render_comparison_latex,
        render_comparison_markdown,
        render_html,
        render_latex,
        render_markdown,
        table_views,
    )

    try:
        rows = read_results(csv_path)
        published = read_published(published_csv) if published_csv and Path(published_csv).is_file() else []
    except (MalformedResultsError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    if not rows:
        raise click.ClickException(f"{csv_path}: no results (run `himbench bench` first)")
    max_rows = DEFAULT_MAX_ROWS if max_rows is None else (max_rows or None)
    plot_rows = plot_rows or DEFAULT_PLOT_ROWS
    views = table_views(rows, max_rows)  # best values and shown rows, once for the Markdown, LaTeX and HTML
    shown = page_rows(rows, max_rows, views)  # what the comparison tables need: the measured rows the page shows
    out = Path(out_dir)
    header = (
        "# Leaderboard\n\n"
        f"Generated by `himbench leaderboard` from `{Path(csv_path).name}` (the source of truth; one row per method, "
        "data, split and environment). Do not edit by hand.\n\n"
        "![accuracy versus latency](accuracy_vs_latency.png) ![latency versus instances](latency_vs_instances.png)\n\n"
    )
    markdown = header + with_data_notes(render_markdown(rows, max_rows, views))
    latex = render_latex(rows, max_rows, views)
    if published:
        markdown += "\n" + render_comparison_markdown(published, shown)
        latex += "\n" + render_comparison_latex(published, shown)
    written = [atomic_write_text(out / "leaderboard.tex", latex)]
    written.append(plot_accuracy_vs_latency(rows, out / "accuracy_vs_latency.png", metric, plot_rows))
    written.append(plot_latency_vs_instances(rows, out / "latency_vs_instances.png", metric, plot_rows))
    photo_path = Path(photo or default_photo())
    if no_qualitative:
        pass
    elif not photo_path.is_file():
        click.echo(f"note: {photo} not found; qualitative grid skipped", err=True)
    else:
        truth = photo_ground_truth(photo_path)
        try:
            image = read_image(photo_path)
            gt_alphas = _read_mattes(truth, image.shape[:2]) if truth is not None else None
        except InputError as err:
            raise click.ClickException(str(err)) from err
        masks_from = photo_masks or (str(truth) if truth is not None else None)
        panels = qualitative_panels(
            rows, image, photo_path.stem, masks_from, device, lambda m: click.echo(f"error: {m}", err=True),
            limit=plot_rows, metric=metric,
        )
        if gt_alphas is not None:
            panels.insert(0, ("ground truth", gt_alphas, ""))
        written.append(plot_qualitative(image, panels, out / "qualitative.png"))
        markdown += f"\n### Qualitative: `{photo_path.name}`\n\n![qualitative](qualitative.png)\n\n"
        if photo_path == Path(GROUP_PHOTO):
            markdown += (
                "The photo: three real P3M portraits (MIT; their faces are blurred in P3M's own release) composited "
                "onto a beach photo from pymatting by `himbench build-dataset` (`tests/data/realdata/group/"
                "PROVENANCE.txt` has the command), so its ground truth (second panel) is exact. "
            )
        if photo_masks:
            source = f"the masks in `{photo_masks}`"
        elif truth is not None:
            source = "the ground-truth mattes binarised at 0.5 (an oracle, as in the tables)"
        else:
            source = "the seg-tiny segmenter's masks, since a plain photo has no ground truth"
        markdown += (f"Each colour is one predicted instance. Mask-guided methods get {source}, perturbed as their "
                     "row says.\n")
    written.insert(0, atomic_write_text(out / "README.md", markdown))
    if html_out:
        names = ("accuracy_vs_latency.png", "latency_vs_instances.png", "qualitative.png")
        images = {name: (out / name).read_bytes() for name in names if (out / name).is_file()}
        page = render_html(rows, published, images, max_rows=max_rows, views=views)
        written.append(atomic_write_text(html_out, page))
    for path in written:
        click.echo(f"wrote {path}")


def _read_mattes(folder: Path, shape: tuple[int, int]):
    """The ``<k>.png`` mattes of ``folder`` (sorted by name) as (N, H, W) float32; InputError on a bad file."""
    import numpy as np

    from himbench.io import read_alpha

    return np.stack([read_alpha(f, expected_shape=shape) for f in sorted(folder.glob("*.png"))])
