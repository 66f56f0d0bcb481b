"""MaGGIe's V-HIM layout: export_vhim writes it, load_clip reads it back; bad files are counted problems."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from himbench.io import InputError, encode_alpha_png
from himbench.video_layout import (
    ClipData,
    export_vhim,
    list_frames,
    list_splits,
    list_videos,
    load_clip,
)

H, W, T, N = 48, 64, 4, 2


def make_clip(clip_id: str = "00000", seed: int = 0) -> ClipData:
    """Two people (soft-edged boxes) moving right, guidance masks = alphas > 0.5, smooth colour frames (red grows to
    the right, green downwards, blue with time and seed) so that JPEG keeps them close and channel order shows."""
    frames = np.zeros((T, H, W, 3), dtype=np.uint8)
    frames[..., 0] = (np.arange(W) * 3)[None, None, :]
    frames[..., 1] = (np.arange(H) * 4)[None, :, None]
    frames[..., 2] = (40 * np.arange(T) + 10 + 5 * seed)[:, None, None]
    alphas = np.zeros((N, T, H, W), dtype=np.float32)
    for t in range(T):
        alphas[0, t, 8:30, 4 + 2 * t : 20 + 2 * t] = 1.0
        alphas[0, t, 8:30, 20 + 2 * t] = 0.4
        alphas[1, t, 20:44, 36 + t : 56 + t] = 0.8
    masks = (alphas > 0.5).astype(np.float32)
    return ClipData(clip_id, frames, alphas, masks)


def quantised(alphas: np.ndarray) -> np.ndarray:
    return (np.rint(alphas * 255.0) / 255.0).astype(np.float32)


@pytest.fixture()
def vhim(tmp_path: Path) -> tuple[Path, ClipData]:
    clip = make_clip()
    counts = export_vhim([clip, make_clip("00001", seed=1)], tmp_path / "V-HIM60", "comp_easy", mask_dir="xmem")
    assert counts == {"clips": 2, "frames": 2 * T, "mattes": 2 * T * N, "masks": 2 * T * N}
    return tmp_path / "V-HIM60", clip


def test_export_writes_maggie_layout_and_reads_back(vhim):
    root, clip = vhim
    split = root / "comp_easy"
    assert (split / "fgr" / "00000" / "00000.jpg").is_file()
    assert (split / "pha" / "00000" / "00003" / "01.png").is_file()
    assert (split / "xmem" / "00001" / "00000" / "00.png").is_file()
    assert sorted(os.listdir(split)) == ["fgr", "pha", "xmem"]  # no temporary folder left behind
    assert [p.name for p in root.iterdir()] == ["comp_easy"]
    assert list_splits(root) == ["comp_easy"]
    assert list_videos(root, "comp_easy") == (["00000", "00001"], [])
    assert list_frames(root, "comp_easy", "00000") == ["00000", "00001", "00002", "00003"]

    loaded = load_clip(root, "comp_easy", "00000", mask_dir="xmem")
    assert loaded.problems == []
    assert loaded.instance_names == ("00.png", "01.png")
    assert loaded.alphas.shape == (N, T, H, W) and loaded.present.all()
    np.testing.assert_array_equal(loaded.alphas, quantised(clip.alphas))  # 8-bit PNG: exact to 1/255
    np.testing.assert_array_equal(loaded.masks, clip.masks)
    # JPEG frames are lossy (as released): close, in RGB order
    assert np.abs(loaded.frames.astype(int) - clip.frames.astype(int)).mean() < 3


def test_export_refuses_unsafe_or_duplicate_ids_before_writing(tmp_path: Path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match="path separator"):
        export_vhim([make_clip("ok"), make_clip("../escape")], out, "comp_hard")
    with pytest.raises(InputError, match="duplicate clip id"):
        export_vhim([make_clip("a"), make_clip("a")], out, "comp_hard")
    with pytest.raises(InputError, match="split name"):
        export_vhim([make_clip("a")], out, "../up")
    assert not out.exists() and not (tmp_path / "escape").exists()


def test_export_never_writes_over_a_split(tmp_path: Path):
    split = tmp_path / "out" / "comp_easy"
    split.mkdir(parents=True)
    (split / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        export_vhim([make_clip()], tmp_path / "out", "comp_easy", mask_dir="xmem")
    assert (split / "keep.txt").read_text() == "mine" and sorted(os.listdir(split)) == ["keep.txt"]


def _huge_png_header() -> bytes:
    """A PNG whose header claims 100000 x 100000 pixels and holds no pixel data."""
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_bad_files_are_counted_and_the_rest_loads(vhim, tmp_path: Path, monkeypatch):
    root, clip = vhim
    pha = root / "comp_easy" / "pha" / "00000"
    (pha / "00001" / "00.png").write_bytes(b"not a png at all")  # unreadable
    (pha / "00002" / "01.png").unlink()  # missing
    (pha / "00003" / "00.png").write_bytes(encode_alpha_png(np.zeros((H + 1, W), np.float32)))  # wrong size
    (pha / "00003" / "01.png").write_bytes(_huge_png_header())  # refused from its header, never decoded
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(encode_alpha_png(clip.alphas[1, 0]))
    (pha / "00000" / "01.png").unlink()
    (pha / "00000" / "01.png").symlink_to(outside)  # resolves outside the split
    loaded = load_clip(root, "comp_easy", "00000")

    by_file = {Path(p.file).relative_to(pha).as_posix(): p.message for p in loaded.problems}
    assert set(by_file) == {"00001/00.png", "00002/01.png", "00003/00.png", "00003/01.png", "00000/01.png"}
    assert "unreadable" in by_file["00001/00.png"] or "cannot" in by_file["00001/00.png"]
    assert "missing" in by_file["00002/01.png"]
    assert "size mismatch" in by_file["00003/00.png"]
    assert "over the limit" in by_file["00003/01.png"]
    assert "outside" in by_file["00000/01.png"]
    bad = {(0, 1), (1, 2), (0, 3), (1, 3), (1, 0)}
    expected = quantised(clip.alphas)
    for k in range(N):
        for t in range(T):
            if (k, t) in bad:
                assert not loaded.present[k, t] and not loaded.alphas[k, t].any()
            else:
                assert loaded.present[k, t]
                np.testing.assert_array_equal(loaded.alphas[k, t], expected[k, t])

    # an oversized file is refused before it is read
    monkeypatch.setenv("HIMBENCH_MAX_FILE_BYTES", "8000")
    big = root / "comp_easy" / "pha" / "00001" / "00000" / "00.png"
    big.write_bytes(big.read_bytes() + b"\0" * 20000)
    loaded = load_clip(root, "comp_easy", "00001", load_frames=False)
    assert [(Path(p.file), "over the limit" in p.message) for p in loaded.problems] == [(big, True)]
    assert loaded.frames is None and loaded.present.sum() == N * T - 1


def test_missing_frame_folder_and_bad_frame_are_counted(vhim):
    root, clip = vhim
    split = root / "comp_easy"
    for name in os.listdir(split / "pha" / "00000" / "00002"):
        (split / "pha" / "00000" / "00002" / name).unlink()
    (split / "pha" / "00000" / "00002").rmdir()
    (split / "fgr" / "00000" / "00001.jpg").write_bytes(b"\xff\xd8garbage")
    (split / "pha" / "00000" / "00009").mkdir()  # mattes of a frame that is not there
    loaded = load_clip(root, "comp_easy", "00000")
    files = sorted(Path(p.file).relative_to(split).as_posix() for p in loaded.problems)
    assert files == ["fgr/00000/00001.jpg", "pha/00000/00002", "pha/00000/00009"]
    assert not loaded.alphas[:, 2].any() and not loaded.present[:, 2].any()
    assert not loaded.frames[1].any() and loaded.frames[0].any()
    np.testing.assert_array_equal(loaded.alphas[:, 3], quantised(clip.alphas)[:, 3])


def test_layout_errors_name_the_folder(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no V-HIM split") as info:
        list_splits(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(info.value)
    split = tmp_path / "root" / "comp_easy"
    (split / "fgr" / "v").mkdir(parents=True)
    (split / "pha").mkdir()
    with pytest.raises(InputError, match="one split"):
        list_splits(split)
    assert list_videos(tmp_path / "root", "comp_easy")[1][0].message.startswith("ground truth: video has frames")
    with pytest.raises(InputError, match="no .jpg frame"):
        load_clip(tmp_path / "root", "comp_easy", "v")
    with pytest.raises(InputError, match="path separator"):
        load_clip(tmp_path / "root", "comp_easy", "../v")
