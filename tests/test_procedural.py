"""The embedded procedural default: human-like figures with a real unknown band, and offline backgrounds."""

from __future__ import annotations

import socket
import subprocess
import sys
from functools import cache

import cv2
import numpy as np
import pytest

from himbench.synthesis import embedded_backgrounds as eb
from himbench.synthesis.embedded_backgrounds import embedded_background, embedded_backgrounds
from himbench.synthesis.procedural import body, figure, hair, procedural_person, procedural_person_count

HEIGHT = 320
SAMPLE = list(range(0, procedural_person_count(), 4))  # 16 figures spread over the pool


@cache
def _person(index: int, height: int = HEIGHT) -> tuple[np.ndarray, np.ndarray]:
    fg, alpha = procedural_person(index, height)
    fg.setflags(write=False)
    alpha.setflags(write=False)
    return fg, alpha


def test_pool_size_and_bad_index():
    assert procedural_person_count() >= 32
    with pytest.raises(ValueError, match="index"):
        procedural_person(-1)


def test_same_index_gives_identical_arrays_whatever_came_before():
    fg1, a1 = procedural_person(5, 256)
    procedural_person(11, 256)  # no hidden state carried between calls
    fg2, a2 = procedural_person(5, 256)
    assert np.array_equal(fg1, fg2)
    assert np.array_equal(a1, a2)


def test_different_indices_differ():
    shapes_or_pixels = set()
    for i in SAMPLE[:8]:
        fg, alpha = _person(i)
        shapes_or_pixels.add((alpha.shape, fg.tobytes()[::97], alpha.tobytes()[::97]))
    assert len(shapes_or_pixels) == 8


@pytest.mark.parametrize("index", SAMPLE)
def test_figure_types_range_and_tight_crop(index):
    fg, alpha = _person(index)
    assert fg.dtype == np.uint8 and alpha.dtype == np.float32
    assert fg.ndim == 3 and fg.shape[2] == 3 and fg.shape[:2] == alpha.shape
    assert alpha.shape[0] == HEIGHT
    assert np.isfinite(alpha).all() and alpha.min() >= 0.0 and alpha.max() <= 1.0
    assert (alpha == 1.0).mean() > 0.1  # a solid body, not just haze
    ys, xs = np.nonzero(alpha > 0)
    h, w = alpha.shape
    # tight: the first and last rows/columns with alpha > 0 sit within a few pixels of the border, never on it
    for gap in (ys.min(), h - 1 - ys.max(), xs.min(), w - 1 - xs.max()):
        assert 1 <= gap <= 5


@pytest.mark.parametrize("index", SAMPLE)
def test_real_unknown_band(index):
    _, alpha = _person(index)
    inside = alpha > 0
    soft = inside & (alpha < 1)
    assert soft.sum() / inside.sum() > 0.05


@pytest.mark.parametrize("index", SAMPLE)
def test_every_figure_has_soft_hair(index, monkeypatch):
    # draw the same figure with and without painting its hair strands (the strands still consume the same random
    # numbers, so everything else is identical): the strands must raise alpha on many pixels, leaving many partial
    fig = figure.sample_figure(np.random.default_rng([index, figure.SALT]))
    unit = HEIGHT / fig.heads_tall
    with_hair = body.draw_figure(fig, unit).a
    monkeypatch.setattr(hair.HairCanvas, "paint", lambda self, layer: None)
    without = body.draw_figure(fig, unit).a
    changed = with_hair - without > 0.01
    assert changed.sum() > 0.02 * (with_hair > 0).sum()
    assert (with_hair[changed] < 0.9).mean() > 0.2


def _weighted_local_mean(fg: np.ndarray, alpha: np.ndarray, size: int) -> np.ndarray:
    w = cv2.boxFilter(alpha, -1, (size, size), normalize=False)
    p = cv2.boxFilter(fg.astype(np.float32) * alpha[..., None], -1, (size, size), normalize=False)
    return p / np.maximum(w, 1e-6)[..., None]


@pytest.mark.parametrize("index", SAMPLE)
def test_foreground_colour_defined_under_soft_pixels(index):
    fg, alpha = _person(index)
    soft = (alpha > 0.05) & (alpha < 0.95)
    # the colour at a soft pixel agrees with the alpha-weighted colour of its neighbourhood: no black fringe
    local = _weighted_local_mean(fg, alpha, 7)
    diff = np.abs(fg.astype(np.float32) - local).max(-1)[soft]
    assert np.mean(diff < 60) > 0.95
    lum = fg.astype(np.float32).mean(-1)
    dark_fringe = soft & (lum < 20) & (local.mean(-1) > 60)
    assert dark_fringe.sum() <= 0.005 * soft.sum()


@pytest.mark.parametrize("index", SAMPLE[:6])
def test_resizing_foreground_alone_does_not_pull_in_black(index):
    # pixels with alpha = 0 carry the colour of nearby structure, so a plain resize of fg (as callers do) matches the
    # premultiplied resize at the edges
    fg, alpha = _person(index)
    size = (fg.shape[1] // 2, fg.shape[0] // 2)
    plain = cv2.resize(fg.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    a_small = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
    premult = cv2.resize(fg.astype(np.float32) * alpha[..., None], size, interpolation=cv2.INTER_AREA)
    exact = premult / np.maximum(a_small, 1e-6)[..., None]
    edge = (a_small > 0.02) & (a_small < 0.98)
    err = np.abs(plain - exact).max(-1)[edge]
    assert np.percentile(err, 99) < 40  # with black under alpha = 0 this is 50 to 160


def test_other_heights():
    for height in (96, 512):
        fg, alpha = procedural_person(3, height)
        assert alpha.shape[0] == height and fg.shape[:2] == alpha.shape


# --------------------------------------------------------------------------------------------------------------------
# Backgrounds


def test_background_names():
    names = embedded_backgrounds()
    assert len(names) >= 16
    assert len(set(names)) == len(names)
    assert not {"astronaut", "camera", "lfw_subset"} & set(names)  # photos that show people are left out
    with pytest.raises(KeyError, match="unknown embedded background"):
        embedded_background("astronaut", (32, 32))


@pytest.mark.parametrize("size", [(120, 200), (300, 90), (64, 64)])
def test_backgrounds_have_size_and_are_deterministic(size):
    for name in embedded_backgrounds():
        bg = embedded_background(name, size)
        assert bg.dtype == np.uint8 and bg.shape == (*size, 3), name
        assert bg.std() > 1.0, name  # a picture, not a flat fill
        assert np.array_equal(bg, embedded_background(name, size)), name
    bg = embedded_background(embedded_backgrounds()[-1], size)
    bg[:] = 0  # callers may write into what they get; the cached base stays intact
    assert embedded_background(embedded_backgrounds()[-1], size).std() > 1.0


def test_photo_at_native_size_is_the_bundled_file_and_crops_are_centred():
    if "coffee" not in embedded_backgrounds():
        pytest.skip("this scikit-image install does not bundle coffee.png")
    path = eb._available_photos()["coffee"]
    ref = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert ref.shape == (400, 600, 3)
    assert np.array_equal(embedded_background("coffee", (400, 600)), ref)
    # covering 200 x 600 needs no scaling: the centre band of rows
    assert np.array_equal(embedded_background("coffee", (200, 600)), ref[100:300])
    # covering 800 x 600 scales by 2 and keeps the centre columns
    big = embedded_background("coffee", (800, 600))
    ref2 = cv2.resize(ref, (1200, 800), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(big, ref2[:, 300:900])


def test_no_background_touches_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    eb._base.cache_clear()
    eb._available_photos.cache_clear()
    for name in embedded_backgrounds():
        assert embedded_background(name, (48, 48)).shape == (48, 48, 3)


def test_deterministic_across_processes():
    # workers are separate processes: nothing may depend on Python's per-process hash seed
    code = (
        "import hashlib;"
        "from himbench.synthesis.procedural import procedural_person;"
        "from himbench.synthesis.embedded_backgrounds import embedded_background;"
        "fg, a = procedural_person(7, 128);"
        "print(hashlib.sha256(fg.tobytes() + a.tobytes() + embedded_background('clouds_sky', (64, 80)).tobytes())"
        ".hexdigest())"
    )
    outs = set()
    for seed in ("1", "2"):
        env = {"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        outs.add(res.stdout.strip())
    assert len(outs) == 1
