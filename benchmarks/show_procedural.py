"""Contact sheet of the embedded procedural people (on a checkerboard, with their alphas) and of the backgrounds.

Run: python benchmarks/show_procedural.py [--start 0] [--count 16] [--height 384]
Writes benchmarks/results/procedural_sheet.png (people) and benchmarks/results/embedded_backgrounds.png, and prints
the generation time per person and per background.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from himbench.io import atomic_write_bytes
from himbench.synthesis.embedded_backgrounds import embedded_background, embedded_backgrounds
from himbench.synthesis.procedural import procedural_person


def _checker(h: int, w: int, cell: int = 16) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    on = ((ys // cell + xs // cell) % 2).astype(bool)
    out = np.full((h, w, 3), 205, np.uint8)
    out[on] = 150
    return out


def _tile(img: np.ndarray, h: int, w: int) -> np.ndarray:
    out = np.full((h, w, 3), 255, np.uint8)
    s = min(h / img.shape[0], w / img.shape[1])
    small = cv2.resize(
        img, (max(int(img.shape[1] * s), 1), max(int(img.shape[0] * s), 1)), interpolation=cv2.INTER_AREA
    )
    y = (h - small.shape[0]) // 2
    x = (w - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--start", type=int, default=0, help="first figure index")
    ap.add_argument("--count", type=int, default=16, help="number of figures on the sheet")
    ap.add_argument("--height", type=int, default=768, help="figure height in pixels (generation size)")
    ap.add_argument("--tile", type=int, default=384, help="tile height on the sheet")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/procedural_sheet.png"))
    ap.add_argument("--bg-out", type=Path, default=Path("benchmarks/results/embedded_backgrounds.png"))
    args = ap.parse_args()
    cv2.setNumThreads(1)

    tiles, times, cpu, soft = [], [], [], []
    tw = args.tile * 5 // 8
    for i in range(args.start, args.start + args.count):
        t0, c0 = time.perf_counter(), time.process_time()
        fg, alpha = procedural_person(i, args.height)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        inside = alpha > 0
        soft.append(float(((alpha > 0) & (alpha < 1)).sum() / max(inside.sum(), 1)))
        comp = fg.astype(np.float32) * alpha[..., None] + _checker(*alpha.shape) * (1 - alpha[..., None])
        a8 = np.repeat((alpha * 255).round().astype(np.uint8)[..., None], 3, 2)
        pair = np.hstack([_tile(comp.round().astype(np.uint8), args.tile, tw), _tile(a8, args.tile, tw)])
        cv2.putText(pair, str(i), (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 0, 0), 1, cv2.LINE_AA)
        tiles.append(pair)
    cols = 4
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 255))
    sheet = np.vstack([np.hstack(tiles[r : r + cols]) for r in range(0, len(tiles), cols)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))[1].tobytes())

    names = embedded_backgrounds()
    first, again, again_cpu, bg_tiles = [], [], [], []
    for name in names:
        t0 = time.perf_counter()
        embedded_background(name, (1024, 1024))
        first.append(time.perf_counter() - t0)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(5):
            bg = embedded_background(name, (1024, 1024))
        again.append((time.perf_counter() - t0) / 5)
        again_cpu.append((time.process_time() - c0) / 5)
        tile = cv2.resize(bg, (192, 192), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, name, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 0, 0), 1, cv2.LINE_AA)
        bg_tiles.append(tile)
    while len(bg_tiles) % 6:
        bg_tiles.append(np.full_like(bg_tiles[0], 255))
    bg_sheet = np.vstack([np.hstack(bg_tiles[r : r + 6]) for r in range(0, len(bg_tiles), 6)])
    atomic_write_bytes(args.bg_out, cv2.imencode(".png", cv2.cvtColor(bg_sheet, cv2.COLOR_RGB2BGR))[1].tobytes())

    t = np.array(times)
    print(
        f"people at {args.height} px: wall mean {t.mean() * 1000:.0f} ms, max {t.max() * 1000:.0f} ms; "
        f"CPU mean {np.mean(cpu) * 1000:.0f} ms, max {np.max(cpu) * 1000:.0f} ms (n={len(t)}); "
        f"soft share min {min(soft):.3f} mean {np.mean(soft):.3f}"
    )
    print(
        f"backgrounds at 1024x1024: first call (builds the cached base) mean {np.mean(first) * 1000:.1f} ms; "
        f"cached: wall mean {np.mean(again) * 1000:.2f} ms, max {np.max(again) * 1000:.2f} ms, "
        f"CPU mean {np.mean(again_cpu) * 1000:.2f} ms, max {np.max(again_cpu) * 1000:.2f} ms (n={len(names)})"
    )
    print(f"wrote {args.out} and {args.bg_out}")


if __name__ == "__main__":
    main()
