"""``himbench leaderboard``: render leaderboard/results.csv as Markdown, LaTeX and plots."""

from __future__ import annotations

import os
from pathlib import Path

import click

__all__ = ["command", "default_photo", "qualitative_panels"]

# A group photo beside the repository when there is one (MaGGIe's, CC BY-NC: never copied in; HIMBENCH_REALDATA
# overrides); else an MIT-licensed P3M portrait from the repository's own test data (present in any clone).
_REALDATA = os.environ.get("HIMBENCH_REALDATA", "../shared/realdata")
GROUP_PHOTO = os.path.join(_REALDATA, "MaGGIe", "demo", "examples", "group1.jpg")
REPO_PHOTO = str(
    Path(__file__).resolve().parents[2] / "tests" / "data" / "realdata" / "P3M" / "demo" / "imgs" / "original"
    / "p_51c916fc.jpg"
)


def default_photo() -> str:
    """The qualitative grid's photo when --photo is not given (see the comment above)."""
    return GROUP_PHOTO if Path(GROUP_PHOTO).is_file() else REPO_PHOTO


def _photo_masks(photo_masks: str | None, image, segmenter_checkpoint: str | None, device: str):
    """Guidance masks for mask-guided methods on the real photo, and a note saying where they came from."""
    import numpy as np

    from himbench.io import read_alpha

    if photo_masks:
        files = sorted(Path(photo_masks).glob("*.png"))
        if files:
            masks = np.stack([read_alpha(f, expected_shape=image.shape[:2]) >= 0.5 for f in files])
            return masks, f"masks from {Path(photo_masks).name}/"
    from himbench.methods import load_registered_model
    from himbench.registry import default_checkpoint

    checkpoint = segmenter_checkpoint or default_checkpoint("seg-tiny")
    if checkpoint is None:
        return None, "no masks: pass --photo-masks or ship a seg-tiny checkpoint"
    segmenter, _ = load_registered_model("seg-tiny", checkpoint, device)
    alphas, _ = segmenter.predict_instances(image)
    return alphas >= 0.5, "masks from seg-tiny"


def qualitative_panels(rows, image, photo_stem: str, photo_masks: str | None, device: str, on_error):
    """One (title, alphas or None, note) per distinct method of the CSV, each rebuilt from its ``spec`` column."""
    from himbench.guidance import GuidanceConfig, perturb_masks
    from himbench.leaderboard import method_spec
    from himbench.methods import create_method

    panels, seen = [], set()
    guide_cache: dict[str, tuple] = {}
    for row in rows:
        label = row.get("method", "?")
        if label in seen:
            continue
        seen.add(label)
        spec = method_spec(row)
        name = spec.pop("name", label.split("@")[0])
        try:
            method = create_method(name, **spec, device=device)
            masks, note = None, ""
            if method.needs_masks:
                seg_ckpt = next((method_spec(r).get("seg_checkpoint") for r in rows
                                 if method_spec(r).get("seg_checkpoint")), None)
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
              help="Real photograph for the qualitative grid (run through every method of the CSV). Default: MaGGIe's "
                   "group1.jpg beside the repository if present, else a P3M portrait from tests/data/realdata.")
@click.option("--photo-masks", default=None, type=click.Path(exists=True, file_okay=False),
              help="Folder of <k>.png masks for --photo, given to mask-guided methods. Default: the masks of the "
                   "seg-tiny segmenter (shipped or seg-refine's checkpoint), so they show a real two-stage pipeline.")
@click.option("--no-qualitative", is_flag=True, help="Skip the qualitative grid (it runs every method once).")
@click.option("--metric", default="IMQ_mad@0.5", show_default=True, help="Accuracy axis of the scatter plot.")
@click.option("--device", default="cpu", show_default=True, help="Device for the qualitative grid's methods.")
@click.option("--published", "published_csv", default="leaderboard/published.csv", show_default=True,
              type=click.Path(dir_okay=False),
              help="Numbers printed in papers, shown beside the measured rows (marked; skipped if the file is absent).")
@click.option("--html", "html_out", default=None, type=click.Path(dir_okay=False),
              help="Also write ONE self-contained HTML page here (sortable tables, published vs measured rows, the "
                   "plots and qualitative grid embedded, the command behind each row).")
def command(csv_path, out_dir, photo, photo_masks, no_qualitative, metric, device, published_csv, html_out) -> None:
    """Render the leaderboard: OUT/README.md (Markdown tables), OUT/leaderboard.tex (LaTeX), and plots
    OUT/accuracy_vs_latency.png, OUT/latency_vs_instances.png, OUT/qualitative.png. Best values are bold, from
    each metric's direction (IMQ/RQ/MQ higher, errors/latency/memory lower). Published numbers (--published) get
    their own "Compare with the papers" tables where each row is marked published or measured; --html writes the
    same as one web page."""
    from himbench.bench.results import MalformedResultsError, read_results
    from himbench.io import InputError, atomic_write_text, read_image
    from himbench.leaderboard import (
        plot_accuracy_vs_latency,
        plot_latency_vs_instances,
        plot_qualitative,
        read_published,
        render_comparison_latex,
        render_comparison_markdown,
        render_html,
        render_latex,
        render_markdown,
    )

    try:
        rows = read_results(csv_path)
        published = read_published(published_csv) if published_csv and Path(published_csv).is_file() else []
    except (MalformedResultsError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    if not rows:
        raise click.ClickException(f"{csv_path}: no results (run `himbench bench` first)")
    out = Path(out_dir)
    header = (
        "# Leaderboard\n\n"
        f"Generated by `himbench leaderboard` from `{Path(csv_path).name}` (the source of truth; one row per method, "
        "data, split and environment). Do not edit by hand.\n\n"
        "![accuracy versus latency](accuracy_vs_latency.png) ![latency versus instances](latency_vs_instances.png)\n\n"
    )
    markdown = header + render_markdown(rows)
    latex = render_latex(rows)
    if published:
        markdown += "\n" + render_comparison_markdown(published, rows)
        latex += "\n" + render_comparison_latex(published, rows)
    written = [atomic_write_text(out / "leaderboard.tex", latex)]
    written.append(plot_accuracy_vs_latency(rows, out / "accuracy_vs_latency.png", metric))
    written.append(plot_latency_vs_instances(rows, out / "latency_vs_instances.png"))
    photo_path = Path(photo or default_photo())
    if no_qualitative:
        pass
    elif not photo_path.is_file():
        click.echo(f"note: {photo} not found; qualitative grid skipped", err=True)
    else:
        try:
            image = read_image(photo_path)
        except InputError as err:
            raise click.ClickException(str(err)) from err
        panels = qualitative_panels(
            rows, image, photo_path.stem, photo_masks, device, lambda m: click.echo(f"error: {m}", err=True)
        )
        written.append(plot_qualitative(image, panels, out / "qualitative.png"))
        source = f"the masks in `{photo_masks}`" if photo_masks else "the seg-tiny segmenter's masks"
        markdown += (
            f"\n### Qualitative: `{photo_path.name}`\n\n![qualitative](qualitative.png)\n\n"
            f"Each colour is one predicted instance. Mask-guided methods get {source} (perturbed as their row "
            "says), since a real photo has no ground truth.\n"
        )
    written.insert(0, atomic_write_text(out / "README.md", markdown))
    if html_out:
        names = ("accuracy_vs_latency.png", "latency_vs_instances.png", "qualitative.png")
        images = {name: (out / name).read_bytes() for name in names if (out / name).is_file()}
        written.append(atomic_write_text(html_out, render_html(rows, published, images)))
    for path in written:
        click.echo(f"wrote {path}")
