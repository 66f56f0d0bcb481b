"""The video leaderboard (issue 23): ``leaderboard/video.csv``, written by ``himbench bench`` on clips, as Markdown.

One table per clip set (the ``data`` column, e.g. one build per occlusion level), every method at every smoothing
strength, the best value of each column in bold by the direction :data:`himbench.metrics.METRICS` declares; then
MaGGIe's Table 7 with the measured rows in its units (:func:`himbench.leaderboard.published.render_comparison_markdown`,
which joins video rows to the video tables only).
"""

from __future__ import annotations

from collections.abc import Sequence

from himbench.leaderboard.published import render_comparison_markdown
from himbench.leaderboard.tables import markdown_code, markdown_escape, metric_direction, parse_number

__all__ = ["VIDEO_COLUMNS", "is_video_results", "render_video_markdown"]

# (CSV column, header, decimals): the instance-aware headline, then MaGGIe's Table 7 columns in its units.
VIDEO_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("IMQ_mad@0.5", "IMQ_mad@0.5", 2),
    ("RQ@0.5", "RQ@0.5", 1),
    ("maggie_MAD", "MAD", 1),
    ("maggie_Grad", "Grad", 2),
    ("maggie_Conn", "Conn", 2),
    ("maggie_dtSSD", "dtSSD", 2),
    ("maggie_MESSDdt", "MESSDdt", 2),
    ("id_switches", "ID switches", 0),
    ("latency_ms", "ms/frame", 0),
)
_DIRECTIONS = {"id_switches": "min", "latency_ms": "min"}


def is_video_results(rows: Sequence[dict]) -> bool:
    """True for a video leaderboard CSV: its rows count frames (``n_frames``), an image leaderboard's do not."""
    return bool(rows) and all(parse_number(row.get("n_frames")) is not None for row in rows)


def _direction(column: str) -> str | None:
    return _DIRECTIONS.get(column) or metric_direction(column)


def _best(rows: Sequence[dict], column: str) -> float | None:
    values = [v for v in (parse_number(r.get(column)) for r in rows) if v is not None]
    direction = _direction(column)
    if not values or direction is None:
        return None
    return max(values) if direction == "max" else min(values)


def render_video_markdown(rows: Sequence[dict], published: Sequence[dict] = ()) -> str:
    """The video leaderboard as Markdown: one table per clip set, then the Table 7 comparison."""
    parts = ["# Video leaderboard\n",
             "Every image method run frame by frame (`himbench bench --data CLIPS`): automatic methods keep each "
             "person's index by IoU matching between frames; mask-guided ones track the first frame's ground-truth "
             "masks (an oracle seed, marked `oracle:first-frame`). `+smoothW` rows add the flow-compensated temporal "
             "smoothing of strength W. IMQ/RQ per frame with one matching per clip; MAD, Grad, Conn, dtSSD and "
             "MESSDdt in MaGGIe's units (its Table 7); ID switches summed over clips; ms/frame is the whole "
             "per-frame pipeline. Best value of each column in bold.\n"]
    for data in dict.fromkeys(row.get("data", "") for row in rows):
        group = [row for row in rows if row.get("data", "") == data]
        clips = "/".join(sorted({row.get("n_clips", "") for row in group}))
        frames = "/".join(sorted({row.get("n_frames", "") for row in group}))
        parts.append(markdown_escape(f"## {data} ({clips} clips, {frames} frames)") + "\n")
        header = ["Method", "Guidance", *(h for _, h, _ in VIDEO_COLUMNS), "Environment"]
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join([" --- "] * 2 + [" ---: "] * len(VIDEO_COLUMNS) + [" --- "]) + "|"]
        best = {column: _best(group, column) for column, _, _ in VIDEO_COLUMNS}
        for row in group:
            cells = [markdown_escape(row.get("method", "?")), markdown_escape(row.get("guidance", "") or "none")]
            for column, _, decimals in VIDEO_COLUMNS:
                value = parse_number(row.get(column))
                cell = "–" if value is None else f"{value:.{decimals}f}"
                if value is not None and best[column] is not None and f"{value:.{decimals}f}" == \
                        f"{best[column]:.{decimals}f}":
                    cell = f"**{cell}**"
                cells.append(cell)
            cells.append(markdown_escape(row.get("environment", "")))
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines) + "\n")
    commands = sorted({row.get("command", "") for row in rows if row.get("command")})
    if commands:
        parts.append("Made with:\n\n" + "\n".join(f"- {markdown_code(command)}" for command in commands) + "\n")
    video_published = [row for row in published if row.get("metric_set") == "maggie-table7"]
    parts.append(render_comparison_markdown(video_published, rows))
    return "\n".join(parts)
