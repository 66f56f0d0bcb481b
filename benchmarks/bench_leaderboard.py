"""Speed of ``himbench leaderboard`` on long results CSVs: himbench.leaderboard vs a straightforward renderer.

Data: a generated results.csv (:func:`himbench.bench.results.write_results`, every documented column filled) of
1,000, 10,000 and 100,000 rows in three (data, split, environment) groups, random accuracy and latency.

"Straightforward" is the renderer as one first writes it (and as himbench had it before issue 25): for every group
and column, a scan for the best value; every row in the Markdown table; one scatter call and one label per row in
the accuracy-versus-latency plot and one line and legend entry per row in the latency-versus-instances plot. Its
cost is dominated by matplotlib laying out one text per row, so it runs on the smallest size only (it took 17 s
for 1,000 rows and did not finish 20,000 in five minutes). It is compared with the same work by the library
(Markdown tables + the two plots), after checking that both mark the same best rows.

Then the whole command (read the CSV, Markdown, LaTeX, HTML with the published comparison, both plots; no
qualitative grid, which runs models) is timed at every size.

    python benchmarks/bench_leaderboard.py [--sizes 1000,10000,100000] [--straight-max 1000]
        [--out benchmarks/results/leaderboard.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

from click.testing import CliRunner  # noqa: E402

from himbench.bench.results import LATENCY_COUNTS, read_results, write_results  # noqa: E402
from himbench.cli.leaderboard import command  # noqa: E402
from himbench.leaderboard import (  # noqa: E402
    ACCURACY_COLUMNS,
    INSTANCE_COLUMNS,
    best_by_column,
    group_rows,
    metric_direction,
    plot_accuracy_vs_latency,
    plot_latency_vs_instances,
    render_markdown,
)

REPO = Path(__file__).resolve().parents[1]
METRICS = [c for c, _ in (*ACCURACY_COLUMNS, *INSTANCE_COLUMNS) if c not in ("params", "peak_mem_mb")]


def make_rows(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        row = {"method": f"method-{i}", "data": "HIM2K", "split": "natural", "environment": f"cpu-{i % 3}",
               "trained": "False" if i % 17 == 0 else "True", "params": 1_000_000 + i % 1000, "n_images": 100,
               "failures": 0, "latency_ms": rng.uniform(5, 500), "peak_mem_mb": rng.uniform(100, 4000),
               "peak_mem_kind": "rss", "device_name": "cpu", "torch_version": "2.0", "date": "2026-01-01",
               "spec": json.dumps({"name": f"method-{i}"}),
               "maggie_MAD": rng.uniform(10, 60), "maggie_MSE": rng.uniform(5, 40),
               "maggie_Grad": rng.uniform(5, 40), "maggie_Conn": rng.uniform(5, 40)}
        row.update({f"latency_ms_n{n}": rng.uniform(5, 500) * n for n in LATENCY_COUNTS})
        row.update({c: rng.uniform(0, 100) for c in METRICS if c not in row})
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------- straightforward version


def straight_number(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def straight_trained(row) -> bool:
    return str(row.get("trained", "True")).lower() not in ("false", "0", "no")


def straight_best(rows, column) -> set[int]:
    direction = metric_direction(column)
    if direction is None:
        return set()
    is_cost = column.startswith(("latency", "peak_mem", "params"))
    values = {i: v for i, row in enumerate(rows)
              if (v := straight_number(row.get(column))) is not None and (is_cost or straight_trained(row))}
    if not values:
        return set()
    best = max(values.values()) if direction == "max" else min(values.values())
    return {i for i, v in values.items() if abs(v - best) <= max(1e-9 * max(abs(v), abs(best)), 1e-12)}


def straight_markdown(rows) -> tuple[str, dict]:
    parts, marks = [], {}
    groups: dict = {}
    for row in rows:
        groups.setdefault((row.get("data", ""), row.get("split", ""), row.get("environment", "")), []).append(row)
    for key, group in groups.items():
        parts.append(f"### {key}")
        for columns in (ACCURACY_COLUMNS, INSTANCE_COLUMNS):
            best = {column: straight_best(group, column) for column, _ in columns}
            marks.update({(key, column): indices for column, indices in best.items()})
            for i, row in enumerate(group):
                cells = [row.get("method", "?")]
                for column, _ in columns:
                    number = straight_number(row.get(column))
                    text = "–" if number is None else f"{number:.2f}"
                    cells.append(f"**{text}**" if i in best[column] else text)
                parts.append("| " + " | ".join(cells) + " |")
    return "\n".join(parts), marks


def straight_plots(rows, folder: Path, metric: str = "IMQ_mad@0.5") -> None:
    from himbench.plotting import new_figure, save_figure

    fig = new_figure((6.4, 4.2))
    ax = fig.subplots()
    for row in rows:
        x, y = straight_number(row.get("latency_ms")), straight_number(row.get(metric))
        if x is None or y is None or x <= 0:
            continue
        ax.scatter([x], [y], marker="o" if straight_trained(row) else "x")
        ax.annotate(row.get("method", "?"), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    save_figure(fig, folder / "straight_a.png", dpi=120)
    fig = new_figure((6.4, 4.2))
    ax = fig.subplots()
    for row in rows:
        points = [(n, v) for n in LATENCY_COUNTS if (v := straight_number(row.get(f"latency_ms_n{n}"))) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=row.get("method", "?"))
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    save_figure(fig, folder / "straight_b.png", dpi=120)


# ------------------------------------------------------------------------------------- measurement


def library_marks(rows) -> dict:
    marks = {}
    for key, group in group_rows(rows).items():
        best = best_by_column(group, [c for c, _ in (*ACCURACY_COLUMNS, *INSTANCE_COLUMNS)])
        marks.update({(key, column): indices for column, indices in best.items()})
    return marks


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--straight-max", type=int, default=1000,
                        help="Largest size the straightforward renderer is run on (it is quadratic in practice).")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "leaderboard.json"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    report: dict = {"benchmark": "leaderboard", "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        warm = make_rows(3)  # import matplotlib and build its font cache before anything is timed
        plot_accuracy_vs_latency(warm, folder / "warm.png")
        straight_plots(warm, folder)
        for size in sizes:
            csv_path = write_results(folder / f"results_{size}.csv", make_rows(size))
            rows = read_results(csv_path)
            entry: dict = {"rows": size, "csv_mb": round(csv_path.stat().st_size / 2**20, 2)}
            entry["library_tables_and_plots_s"] = timed(lambda rows=rows: (
                render_markdown(rows), plot_accuracy_vs_latency(rows, folder / "a.png"),
                plot_latency_vs_instances(rows, folder / "b.png")))
            if size <= args.straight_max:
                _, straight = straight_markdown(rows)
                if straight != library_marks(rows):
                    raise SystemExit(f"{size} rows: the library and the straightforward renderer bold different rows")
                entry["same_best_rows"] = True
                entry["straightforward_tables_and_plots_s"] = timed(lambda rows=rows: (
                    straight_markdown(rows), straight_plots(rows, folder)))
                entry["speedup"] = entry["straightforward_tables_and_plots_s"] / entry["library_tables_and_plots_s"]
            out = folder / f"lb_{size}"
            cli = ["--csv", str(csv_path), "--out", str(out), "--no-qualitative",
                   "--published", str(REPO / "leaderboard" / "published.csv"), "--html", str(out / "index.html")]
            start = time.perf_counter()
            result = CliRunner().invoke(command, cli)
            entry["command_s"] = time.perf_counter() - start
            if result.exit_code != 0:
                raise SystemExit(result.output)
            entry["output_kb"] = {p.name: round(p.stat().st_size / 1024) for p in sorted(out.iterdir())}
            report["sizes"][str(size)] = entry
            line = (f"{size:>7} rows: library tables+plots {entry['library_tables_and_plots_s']:6.2f} s, "
                    f"whole command (csv, md, tex, html, plots) {entry['command_s']:6.2f} s")
            if "speedup" in entry:
                line += (f"; straightforward {entry['straightforward_tables_and_plots_s']:6.2f} s "
                         f"({entry['speedup']:.1f}x)")
            print(line, flush=True)
    report["machine"] = {"platform": platform.platform(), "processor": platform.processor(),
                         "cpu_count": os.cpu_count()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
