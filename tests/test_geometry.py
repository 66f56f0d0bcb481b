"""The one box type, himbench.geometry.Box (x0, y0, x1, y1; exclusive ends), and tight_box: hand-worked cases."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from himbench.geometry import Box, tight_box

# Two pixels set in a 5 x 8 mask: (row 1, column 6) and (row 3, column 2). Worked by hand: columns 2..6 and rows 1..3
# hold them, so the tight box is x0 = 2, y0 = 1, x1 = 7, y1 = 4 (ends exclusive).
MASK = np.zeros((5, 8), bool)
MASK[1, 6] = MASK[3, 2] = True
MASK_BOX = Box(2, 1, 7, 4)


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_tight_box_of_a_small_mask_in_every_dtype(dtype):
    assert tight_box(MASK.astype(dtype)) == MASK_BOX


def test_tight_box_reads_any_non_zero_value():
    values = np.zeros((4, 4), np.float32)
    values[2, 1] = -0.5  # negative is non-zero
    values[0, 3] = np.nan  # so is NaN
    assert tight_box(values) == Box(1, 0, 4, 3)
    levels = np.zeros((3, 3), np.uint8)
    levels[1, 1] = 1  # the faintest 8-bit level counts
    assert tight_box(levels) == Box(1, 1, 2, 2)


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.float32])
def test_tight_box_of_an_empty_mask_is_none(dtype):
    assert tight_box(np.zeros((6, 3), dtype)) is None
    assert tight_box(np.zeros((0, 5), dtype)) is None
    assert tight_box(np.zeros((5, 0), dtype)) is None


def test_tight_box_of_a_strided_view():
    # every other column of MASK: columns 0, 2, 4, 6 of the original become 0, 1, 2, 3
    assert tight_box(MASK[:, ::2]) == Box(1, 1, 4, 4)
    assert tight_box(MASK[2:, 3:]) is None  # the crop right of (3, 2) and below row 1 holds neither pixel
    assert tight_box(MASK[1:, 2:]) == Box(0, 0, 5, 3)


def test_tight_box_of_a_full_mask_and_of_corner_pixels():
    assert tight_box(np.ones((3, 4), bool)) == Box(0, 0, 4, 3)
    corner = np.zeros((3, 4), np.uint8)
    corner[2, 3] = 255
    assert tight_box(corner) == Box(3, 2, 4, 3)


def test_tight_box_rejects_other_than_2d():
    with pytest.raises(ValueError, match="2-D"):
        tight_box(np.zeros((2, 2, 3), np.uint8))


def test_tight_box_agrees_with_nonzero_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(200):
        mask = rng.random((int(rng.integers(1, 12)), int(rng.integers(1, 12)))) < rng.uniform(0.0, 0.2)
        ys, xs = np.nonzero(mask)
        expected = Box(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if ys.size else None
        assert tight_box(mask) == expected
        assert tight_box(mask.astype(np.float32)) == expected


def test_slices_crop_rows_then_columns():
    image = np.arange(5 * 8).reshape(5, 8)
    crop = image[MASK_BOX.slices]
    np.testing.assert_array_equal(crop, image[1:4, 2:7])
    assert crop.shape == MASK_BOX.shape == (3, 5)
    assert (MASK_BOX.width, MASK_BOX.height, MASK_BOX.area) == (5, 3, 15)
    colour = np.zeros((5, 8, 3), np.uint8)
    colour[MASK_BOX.slices] = 7  # the trailing channel axis is left whole
    assert colour.sum() == 15 * 3 * 7
    assert MASK[MASK_BOX.slices].sum() == MASK.sum()  # the tight box keeps every set pixel


def test_as_tuple_is_the_dataset_order_in_plain_ints():
    box = Box(np.int64(5), np.int64(2), np.int64(6), np.int64(3))
    assert box.as_tuple() == (5, 2, 6, 3)
    assert all(type(v) is int for v in box.as_tuple())


def test_of_shape_translate_and_relative_to():
    box = Box.of_shape((4, 7, 3), x0=2, y0=3)  # a 4-row, 7-column RGB crop whose top-left pixel is (x=2, y=3)
    assert box == Box(2, 3, 9, 7)
    assert Box.of_shape((4, 7)) == Box(0, 0, 7, 4)
    assert box.translate(-2, 1) == Box(0, 4, 7, 8)
    inner = Box(4, 5, 6, 7)
    assert inner.relative_to(box) == Box(2, 2, 4, 4)
    assert inner.relative_to(box).translate(box.x0, box.y0) == inner
    canvas = np.arange(10 * 10).reshape(10, 10)
    np.testing.assert_array_equal(canvas[box.slices][inner.relative_to(box).slices], canvas[inner.slices])


def test_pad_clip_union_intersection():
    box = Box(1, 1, 3, 3)
    assert box.pad(2) == Box(-1, -1, 5, 5)
    assert box.pad(2).clip((4, 6)) == Box(0, 0, 5, 4)  # shape is (H, W): the height clips y1, the width x1
    assert Box(-3, 2, 2, 9).clip((5, 5, 3)) == Box(0, 2, 2, 5)
    assert box.union(Box(5, 0, 6, 2)) == Box(1, 0, 6, 3)
    assert box.intersection(Box(2, 0, 6, 2)) == Box(2, 1, 3, 2)
    apart = box.intersection(Box(3, 0, 6, 2))  # touching edges share no pixel
    assert apart.is_empty and apart.area == 0
    outside = Box(10, 10, 12, 12).clip((4, 6))
    assert outside.is_empty and outside.area == 0


def test_empty_boxes():
    assert Box(2, 2, 2, 5).is_empty and Box(2, 5, 4, 5).is_empty and Box(3, 0, 1, 2).is_empty
    assert not Box(0, 0, 1, 1).is_empty
    assert np.zeros((4, 4))[Box(2, 1, 2, 3).slices].size == 0


def test_box_cannot_be_unpacked_indexed_or_changed():
    # Fields by name only: a caller written for another order fails loudly instead of reading the wrong numbers.
    box = Box(1, 2, 3, 4)
    with pytest.raises(TypeError):
        y0, x0, y1, x1 = box  # noqa: F841
    with pytest.raises(TypeError):
        box[0]  # noqa: B018
    with pytest.raises(dataclasses.FrozenInstanceError):
        box.x0 = 0  # type: ignore[misc]
    assert box == Box(1, 2, 3, 4) and len({box, Box(1, 2, 3, 4)}) == 1
