"""`himbench demo`: the whole pipeline on the embedded default data, offline."""

from __future__ import annotations

from pathlib import Path

import click

from himbench.cli.errors import Command
from himbench.cli.options import workers_option

__all__ = ["command", "samples_sheet"]

DEFAULT_METHODS = "e2ehim-tiny,mask-cf,mask-refine,seg-refine"


def samples_sheet(data_dir: str | Path, split: str, count: int, path: str | Path) -> Path:
    """A picture of the first ``count`` composites, each beside its instance mattes painted in colours."""
    import numpy as np

    from himbench.leaderboard import colourise
    from himbench.plotting import new_figure, save_figure
    from himbench.shards import read_split

    samples = []
    for sample in read_split(data_dir, split):
        samples.append(sample)
        if len(samples) == count:
            break
    fig = new_figure((2.6 * len(samples), 5.4))
    axes = np.asarray(fig.subplots(2, len(samples))).reshape(2, -1)
    for column, sample in enumerate(samples):
        axes[0, column].imshow(sample.image)
        axes[0, column].set_title(f"{sample.id} ({sample.num_instances} people)", fontsize=8)
        axes[1, column].imshow(colourise(sample.image, sample.alphas))
        for ax in axes[:, column]:
            ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


@click.command("demo", cls=Command)
@click.option("--out", "out_dir", default="himbench-demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the built data, predictions, scores, tables and pictures.")
@click.option("--images", default=12, show_default=True, type=int, help="Test images to synthesise and score.")
@click.option("--size", default=512, show_default=True, type=int, help="Side of the square composites in pixels.")
@click.option("--methods", default=DEFAULT_METHODS, show_default=True,
              help="Methods to compare (see `himbench models`); learned ones use the checkpoints shipped in the repo.")
@click.option("--seed", default=2026, show_default=True, type=int, help="Seed of the demo test set.")
@workers_option("Build processes (default: all cores).", short=True)
@click.option("--max-instances", default=6, show_default=True, type=int,
              help="Latency probe: time 1..this many people per 640 x 640 image.")
def command(out_dir, images, size, methods, seed, workers, max_instances) -> None:
    """Build a test set from the embedded procedural people and backgrounds, run every method on it, score them with
    the instance-aware metrics, and render the leaderboard and pictures into OUT.

    This is `himbench build-dataset` + `himbench bench` + `himbench leaderboard` with small defaults; run those
    commands for the full-size versions.
    """
    from tqdm import tqdm

    from himbench.bench import BenchConfig, read_results, run_bench, update_results
    from himbench.bench.record import write_run
    from himbench.cli.bench import command as bench_command
    from himbench.cli.bench import echo_rows, invocation_of, parse_method_options
    from himbench.leaderboard import read_published, write_leaderboard
    from himbench.leaderboard.qualitative import default_photo
    from himbench.synthesis import BuildConfig, build_dataset

    out = Path(out_dir)
    data = out / "data"
    click.echo(f"[1/4] building {images} test images ({size} px) from the embedded people -> {data}")
    config = BuildConfig(splits={"test": images}, width=size, height=size, seed=seed, images_per_shard=8)
    report = build_dataset(config, data, workers=workers)
    click.echo(f"      {report.num_images} images; dataset card: {data / 'README.md'}")
    sheet = samples_sheet(data, "test", min(4, images), out / "samples.png")
    click.echo(f"[2/4] samples picture -> {sheet}")

    click.echo(f"[3/4] benchmarking {methods} (predict + evaluate + latency)")
    results_csv, bench_dir = out / "results.csv", out / "bench"
    names = [m.strip() for m in methods.split(",") if m.strip()]
    guidance = {"guidance": "none", "guidance_seed": 0, "guidance_radius": 4, "masks_dir": None}  # bench's defaults
    bench = BenchConfig(
        data=str(data), methods=tuple(names), split="test",
        method_options=parse_method_options(names, (), (), guidance, None),
        latency_counts=tuple(range(1, max_instances + 1)), latency_repeats=1,
    )
    read_results(results_csv)  # a malformed CSV from an earlier demo is refused before the benchmark runs
    errors: list[str] = []

    def on_error(message: str) -> None:
        errors.append(message)
        click.echo(f"error: {message}", err=True)

    env, results, rows = run_bench(bench, lambda items, name: tqdm(items, desc=name, unit="img"), on_error)
    # each row says how to reproduce it: the `himbench bench` command line of this run
    invocation = invocation_of(bench_command, {
        "methods": methods, "data": str(data), "out_dir": str(bench_dir), "leaderboard_csv": str(results_csv),
        "max_instances": max_instances, "latency_repeats": 1,
    })
    for row in rows:
        row["command"] = invocation
    result_path = write_run(bench, env, results, rows, bench_dir, str(data), "test")
    update_results(results_csv, rows)
    echo_rows(env.slug, "test", rows)
    click.echo(f"wrote {result_path} and updated {results_csv}")
    skipped = [m for m in errors if "not benchmarked" in m]
    if skipped:
        raise click.ClickException(f"{len(skipped)} method(s) not benchmarked (see errors above)")

    board = out / "leaderboard"
    click.echo(f"[4/4] rendering the leaderboard -> {board}")
    published = Path("leaderboard/published.csv")  # as `himbench leaderboard`: the repository's, when run there
    written = write_leaderboard(
        read_results(results_csv), board, csv_name=results_csv.name,
        published_rows=read_published(published) if published.is_file() else [], photo=default_photo(),
        on_error=lambda message: click.echo(f"error: {message}", err=True),
    )
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"done: open {board / 'README.md'} and {sheet}")
