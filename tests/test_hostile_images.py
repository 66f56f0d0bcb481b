"""Hostile input, round two (issue 25), image files: the matte channel comes from the file's own colour mode in every
format (a palette PNG with a transparency entry reads as its grey values, not as its transparency mask), every image
is read in stored orientation (EXIF ignored), and files that share a stem or that no reader takes are reported
instead of passed over.

All files are made here and small (64x96).
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from himbench.evaluation import evaluate_folder
from himbench.evaluation.ground_truth import open_ground_truth
from himbench.io import InputError, decode_alpha, probe_image, read_alpha, read_image, read_image_size, write_alpha_png
from himbench.synthesis.sources import scan_backgrounds, scan_foregrounds

H, W = 64, 96
# Every 8-bit level, in a pattern that differs across rows and columns (a transpose or flip would show).
GT = ((np.arange(H * W).reshape(H, W) * 7 + np.arange(H)[:, None] * 3) % 256).astype(np.uint8)
GT16 = (GT.astype(np.uint16) * 257) ^ (np.arange(W, dtype=np.uint16)[None, :] & 0xFF)  # uses the low byte too
# Constant on each 8x8 block: a JPEG of it at quality 100 decodes exactly (only the DC coefficient is non-zero).
BLOCKS = np.kron((np.arange((H // 8) * (W // 8)).reshape(H // 8, W // 8) * 5 % 256), np.ones((8, 8))).astype(np.uint8)
COLOUR = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _grey(a: np.ndarray) -> Image.Image:
    return Image.fromarray(a, "L")


def _rgb_grey(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.repeat(a[:, :, None], 3, axis=2), "RGB")


def _palette(a: np.ndarray) -> Image.Image:
    image = _grey(a).convert("P")
    assert image.mode == "P"
    return image


def _i16(a: np.ndarray) -> Image.Image:
    image = Image.fromarray(a.astype(np.uint16))
    assert image.mode == "I;16"
    return image


def _rgba(alpha: np.ndarray) -> Image.Image:
    return Image.fromarray(np.dstack([COLOUR, alpha]), "RGBA")


def _la(grey: np.ndarray, alpha: np.ndarray) -> Image.Image:
    return Image.fromarray(np.dstack([grey, alpha]), "LA")


def _png_rgba16(alpha16: np.ndarray) -> bytes:
    bgra = np.dstack([COLOUR.astype(np.uint16) * 257, alpha16])
    return cv2.imencode(".png", bgra)[1].tobytes()


def _u8(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) / np.float32(255)


def _u16(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) / np.float32(65535)


# (file bytes, the mode its header reports, the matte it must decode to)
MODES = {
    "png-L": lambda: (_save(_grey(GT), "PNG"), "L", _u8(GT)),
    "png-L-trns": lambda: (_save(_grey(GT), "PNG", transparency=0), "L", _u8(GT)),
    "png-P": lambda: (_save(_palette(GT), "PNG"), "P", _u8(GT)),
    "png-P-trns0": lambda: (_save(_palette(GT), "PNG", transparency=0), "P", _u8(GT)),
    "png-P-trns255": lambda: (_save(_palette(GT), "PNG", transparency=255), "P", _u8(GT)),
    "png-RGB": lambda: (_save(_rgb_grey(GT), "PNG"), "RGB", _u8(GT)),
    "png-RGB-trns": lambda: (_save(_rgb_grey(GT), "PNG", transparency=(0, 0, 0)), "RGB", _u8(GT)),
    "png-LA": lambda: (_save(_la(GT, 255 - GT), "PNG"), "LA", _u8(GT)),
    "png-RGBA": lambda: (_save(_rgba(GT), "PNG"), "RGBA", _u8(GT)),
    "png-I16": lambda: (_save(_i16(GT16), "PNG"), "I;16", _u16(GT16)),
    "png-RGBA16": lambda: (_png_rgba16(GT16), "RGBA", _u16(GT16)),
    "png-1bit": lambda: (_save(_grey(GT).point(lambda v: 255 * (v > 127)).convert("1"), "PNG"), "L",
                         (GT > 127).astype(np.float32)),
    "tiff-L": lambda: (_save(_grey(GT), "TIFF"), "L", _u8(GT)),
    "tiff-LA": lambda: (_save(_la(GT, 255 - GT), "TIFF"), "LA", _u8(GT)),
    "tiff-P": lambda: (_save(_palette(GT), "TIFF"), "P", _u8(GT)),
    "tiff-RGB": lambda: (_save(_rgb_grey(GT), "TIFF"), "RGB", _u8(GT)),
    "tiff-RGBA": lambda: (_save(_rgba(GT), "TIFF"), "RGBA", _u8(GT)),
    "tiff-I16": lambda: (_save(_i16(GT16), "TIFF"), "I;16", _u16(GT16)),
    "tiff-F": lambda: (_save(Image.fromarray(_u8(GT), "F"), "TIFF"), "F", _u8(GT)),
    "bmp-L": lambda: (_save(_grey(GT), "BMP"), "L", _u8(GT)),
    "bmp-P": lambda: (_save(_palette(GT), "BMP"), None, _u8(GT)),
    "webp-RGBA": lambda: (_save(_rgba(GT), "WEBP", lossless=True), "RGBA", _u8(GT)),
    "pgm-L": lambda: (_save(_grey(GT), "PPM"), "L", _u8(GT)),
    "jpeg-L": lambda: (_save(_grey(BLOCKS), "JPEG", quality=100), "L", _u8(BLOCKS)),
    "jpeg-RGB": lambda: (_save(_rgb_grey(BLOCKS), "JPEG", quality=100), "RGB", _u8(BLOCKS)),
}


@pytest.mark.parametrize("case", sorted(MODES))
def test_matte_channel_is_decided_by_the_files_own_mode(case):
    data, mode, expected = MODES[case]()
    if mode is not None:  # what the header says, read without decoding (BMP's grey palette is "L" or "P")
        assert probe_image(data, case).mode == mode
    np.testing.assert_array_equal(decode_alpha(data, case, (H, W)), expected)


REFUSED = {
    "png-RGB-colour": lambda: (_save(Image.fromarray(COLOUR, "RGB"), "PNG"), "colour RGB image"),
    "png-P-colour": lambda: (_save(Image.fromarray(COLOUR, "RGB").convert("P"), "PNG", transparency=0),
                             "palette image with colour"),
    "tiff-P-colour": lambda: (_save(Image.fromarray(COLOUR, "RGB").convert("P"), "TIFF"), "palette image with colour"),
    "jpeg-RGB-colour": lambda: (_save(Image.fromarray(COLOUR, "RGB"), "JPEG", quality=90), "colour RGB image"),
    "jpeg-CMYK": lambda: (_save(_rgb_grey(GT).convert("CMYK"), "JPEG"), "unsupported matte colour mode CMYK"),
    "tiff-CMYK": lambda: (_save(_rgb_grey(GT).convert("CMYK"), "TIFF"), "unsupported matte colour mode CMYK"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_colour_and_cmyk_mattes_are_refused_naming_the_file(case):
    data, message = REFUSED[case]()
    with pytest.raises(InputError, match=f"^{case}: .*{message}"):
        decode_alpha(data, case)


def test_grey_palette_with_unused_colour_entries_is_read_as_its_grey():
    """Only the entries the pixels use must be grey: tools often write a full palette."""
    two = np.where(GT > 127, 255, 0).astype(np.uint8)
    image = Image.fromarray((two > 0).astype(np.uint8), "P")
    image.putpalette([0, 0, 0, 255, 255, 255] + [200, 10, 30] * 254)  # colour entries, never used
    np.testing.assert_array_equal(decode_alpha(_save(image, "PNG", transparency=1)), _u8(two))


# ------------------------------------------------------------------------- palette mattes score as their grey
def _him2k(root: Path, mattes: dict[str, list[np.ndarray]]) -> None:
    for stem, alphas in mattes.items():
        for k, alpha in enumerate(alphas):
            write_alpha_png(root / "alphas" / "test" / stem / f"{k:02d}.png", alpha)


def _people(k: int) -> list[np.ndarray]:
    yy, xx = np.mgrid[:H, :W]
    left = np.clip((14 + k - np.hypot(yy - 30, xx - 25)) / 4, 0, 1)
    right = np.clip((16 - np.hypot(yy - 34, xx - 70 + k)) / 4, 0, 1)
    return [np.round(a * 255).astype(np.uint8) for a in (left, right)]


@pytest.mark.parametrize("transparency", [0, 255])
def test_palette_png_prediction_with_transparency_scores_100(tmp_path, transparency):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    truth = {stem: _people(k) for k, stem in enumerate("abc")}
    _him2k(gt, {stem: [_u8(a) for a in alphas] for stem, alphas in truth.items()})
    for stem, alphas in truth.items():
        for k, alpha in enumerate(alphas):
            path = pred / "test" / stem / f"{k:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(alpha, "L").convert("P").save(path, transparency=transparency)
            assert Image.open(path).mode == "P" and "transparency" in Image.open(path).info
            np.testing.assert_array_equal(read_alpha(path), _u8(alpha))
    result = evaluate_folder(pred, gt, workers=1, progress=False)
    assert result.problems == []
    assert [r["IMQ_mad@0.5"] for r in result.records] == pytest.approx([100.0] * 3)
    assert result.summary["IMQ_mad@0.5"] == pytest.approx(100.0)


# --------------------------------------------------------------------------------------- stored orientation
def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_jpeg_with_exif_orientation_is_read_in_stored_orientation(tmp_path, orientation):
    photo = tmp_path / "photo.jpg"
    stored = np.dstack([BLOCKS, 255 - BLOCKS, BLOCKS // 2])
    Image.fromarray(stored, "RGB").save(photo, quality=100, subsampling=0, exif=_exif(orientation))
    assert Image.open(photo).getexif()[0x0112] == orientation
    data = np.frombuffer(photo.read_bytes(), np.uint8)
    as_stored = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)[:, :, ::-1]
    # The tag works: OpenCV's default read turns the photo (6 and 8 swap its sides, 3 turns it upside down).
    assert not np.array_equal(cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1], as_stored)
    image = read_image(photo)
    assert image.shape == (H, W, 3) and read_image_size(photo) == (H, W)
    np.testing.assert_array_equal(image, as_stored)
    np.testing.assert_allclose(image.astype(int), stored.astype(int), atol=2)  # the stored pixels, up to JPEG error

    matte = tmp_path / "matte.jpg"
    _grey(BLOCKS).save(matte, quality=100, exif=_exif(orientation))
    np.testing.assert_array_equal(read_alpha(matte, (H, W)), _u8(BLOCKS))


def test_png_with_exif_orientation_is_read_in_stored_orientation(tmp_path):
    path = tmp_path / "matte.png"
    _grey(GT).save(path, exif=_exif(6))
    assert Image.open(path).getexif()[0x0112] == 6
    np.testing.assert_array_equal(read_alpha(path, (H, W)), _u8(GT))
    np.testing.assert_array_equal(read_image(path)[:, :, 0], GT)


# ---------------------------------------------------------------------------------------- duplicate stems
def _cutout_folder(root: Path, colour: str, colour_names: list[str], alpha_names: list[str]) -> Path:
    (root / colour).mkdir(parents=True)
    (root / "alpha").mkdir()
    for name in colour_names:
        cv2.imwrite(str(root / colour / name), COLOUR)
    for name in alpha_names:
        cv2.imwrite(str(root / "alpha" / name), GT)
    return root


@pytest.mark.parametrize("colour", ["fg", "original"])
def test_two_images_with_one_stem_in_a_foreground_folder_are_reported_naming_both(tmp_path, colour):
    src = _cutout_folder(tmp_path / "set", colour, ["a.jpg", "a.png", "b.png"], ["a.png", "b.png"])
    refs, problems = scan_foregrounds([str(src)])
    assert [ref.label.split(":")[1] for ref in refs] == ["b"]
    assert len(problems) == 1, problems
    assert f"{src / colour / 'a.jpg'} and {src / colour / 'a.png'}: 2 image files share the stem 'a'" in problems[0]
    assert "no alpha with the same name" not in problems[0] and "alpha has no image" not in problems[0]


def test_two_alphas_with_one_stem_are_reported_naming_both(tmp_path):
    src = _cutout_folder(tmp_path / "set", "fg", ["a.png", "b.png"], ["a.jpg", "a.png", "b.png"])
    refs, problems = scan_foregrounds([str(src)])
    assert [ref.label.split(":")[1] for ref in refs] == ["b"]
    assert len(problems) == 1, problems
    assert f"{src / 'alpha' / 'a.jpg'} and {src / 'alpha' / 'a.png'}: 2 alpha files share the stem 'a'" in problems[0]


def test_rgba_cutouts_sharing_a_stem_and_jpegs_among_them_are_reported(tmp_path):
    src = tmp_path / "cutouts"
    src.mkdir()
    for name in ("a.png", "b.png"):
        (src / name).write_bytes(_save(_rgba(GT), "PNG"))
    (src / "a.webp").write_bytes(_save(_rgba(GT), "WEBP", lossless=True))
    cv2.imwrite(str(src / "c.jpg"), COLOUR)
    refs, problems = scan_foregrounds([str(src)])
    assert [ref.label.split(":")[1] for ref in refs] == ["b"]
    assert len(problems) == 2, problems
    assert any(f"{src / 'a.png'} and {src / 'a.webp'}: 2 cut-out files share the stem 'a'" in p for p in problems)
    assert any(p.startswith(f"{src / 'c.jpg'}: a JPG file has no alpha channel") for p in problems)


def test_background_files_sharing_a_stem_are_two_backgrounds(tmp_path):
    folder = tmp_path / "bg"
    folder.mkdir()
    for name in ("a.jpg", "a.png"):
        cv2.imwrite(str(folder / name), COLOUR)
    labels = [ref.label.split(":", 1)[1] for ref in scan_backgrounds([str(folder)])]
    assert labels == ["a.jpg", "a.png"]  # named by path with suffix: both used, neither mislabelled


def test_him2k_ground_truth_photos_sharing_a_stem_are_a_counted_problem(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    truth = {stem: _people(k) for k, stem in enumerate("abc")}
    _him2k(gt, {stem: [_u8(a) for a in alphas] for stem, alphas in truth.items()})
    for stem, alphas in truth.items():
        for k, alpha in enumerate(alphas):
            write_alpha_png(pred / "test" / stem / f"{k:02d}.png", _u8(alpha) * np.float32(0.9))
    clean = evaluate_folder(pred, gt, workers=1, progress=False)
    assert clean.problems == []
    photos = gt / "images" / "test"
    photos.mkdir(parents=True)
    for name in ("b.jpg", "b.png", "c.png"):
        cv2.imwrite(str(photos / name), COLOUR)
    truth_listing = open_ground_truth(gt, "test")
    assert truth_listing.stems == ["a", "b", "c"]
    assert [tuple(p) for p in truth_listing.problems] == [
        (str(photos / "b.jpg"), "ground truth: 2 images share the stem 'b' (b.jpg and b.png); b.jpg is used for its "
                                "size and plots"),
    ]
    result = evaluate_folder(pred, gt, workers=1, progress=False)
    assert len(result.problems) == 1 and "b.jpg and b.png" in result.problems[0].message
    assert result.records == clean.records  # counted, and every image still scores as in the clean run


# ------------------------------------------------------------------------------------- predict input folders
def test_predict_names_the_gif_it_skips_in_an_input_folder(tmp_path):
    from himbench.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), np.zeros((32, 32, 3), np.uint8))
    Image.new("RGB", (32, 32)).save(photos / "party.gif")
    (photos / "raw").mkdir()
    (photos / ".DS_Store").write_bytes(b"\0")
    result = CliRunner().invoke(main, ["predict", "--model", "e2ehim-tiny", str(photos), "-o", str(tmp_path / "out"),
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {photos}: skipped 2 entries that are not images predict reads (jpg, jpeg, png, bmp, tif, tiff, "
        "webp; folders are not searched recursively): party.gif, raw/"
    ]
    assert (tmp_path / "out" / "test" / "a" / "scores.json").is_file()
    assert sorted(p.name for p in (tmp_path / "out" / "test").iterdir()) == ["a"]
