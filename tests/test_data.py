"""HIMShardDataset, letterbox policy and collate_him, on tiny shards written here (soft ellipse "people")."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from himbench.data import HIMShardDataset, collate_him
from himbench.geometry import letterbox_image, letterbox_mattes, unletterbox
from himbench.io import InputError, encode_alpha_png
from himbench.shards import boxes_from_alphas, read_split, shard_name, write_shard


def toy_sample(rng: np.random.Generator, height: int, width: int, num_people: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy background with ``num_people`` soft-edged coloured ellipses composited back to front (SPEC s.1)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = rng.uniform(0, 90, size=(height, width, 3)).astype(np.float32)
    raw = []
    for _ in range(num_people):
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.3, 0.7) * height
        rx, ry = rng.uniform(0.08, 0.18) * width, rng.uniform(0.2, 0.35) * height
        dist = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
        raw.append(np.clip((1.15 - dist) / 0.3, 0.0, 1.0))  # soft border a few pixels wide
    visible = []
    for i, alpha in enumerate(raw):  # raw[i] is in front of raw[j < i]
        vis = alpha.copy()
        for front in raw[i + 1 :]:
            vis *= 1.0 - front
        visible.append(np.round(vis * 255) / 255)
    visible_arr = np.stack(visible).astype(np.float32) if visible else np.zeros((0, height, width), np.float32)
    for vis in visible_arr:
        colour = rng.uniform(120, 255, size=3).astype(np.float32)
        image = image * (1 - vis[..., None]) + colour * vis[..., None]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), visible_arr


def toy_row(sample_id: str, image: np.ndarray, alphas: np.ndarray, seed: int = 0) -> dict:
    ok, png = cv2.imencode(".png", image[:, :, ::-1])
    assert ok
    n = len(alphas)
    return {
        "id": sample_id,
        "seed": seed,
        "image": png.tobytes(),
        "alphas": [encode_alpha_png(a) for a in alphas],
        "boxes": boxes_from_alphas(alphas).tolist(),
        "depth_order": list(range(n)),
        "fg_sources": ["toy"] * n,
        "bg_source": "noise",
        "width": image.shape[1],
        "height": image.shape[0],
        "num_instances": n,
    }


def make_toy_dataset(
    root: Path,
    split: str = "train",
    num_images: int = 6,
    shards: int = 2,
    size: tuple[int, int] = (96, 128),
    seed: int = 0,
    max_people: int = 3,
) -> Path:
    """Write ``num_images`` toy samples over ``shards`` Parquet shards under ``root/data``; returns ``root``."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(num_images):
        image, alphas = toy_sample(rng, size[0], size[1], int(rng.integers(1, max_people + 1)))
        rows.append(toy_row(f"{split}_{i:04d}", image, alphas, seed=i))
    per = -(-num_images // shards)
    for s in range(shards):
        write_shard(rows[s * per : (s + 1) * per], Path(root) / "data" / shard_name(split, s, shards))
    return Path(root)


def test_dataset_matches_read_split_and_letterboxes(tmp_path):
    root = make_toy_dataset(tmp_path, num_images=5, shards=2, size=(60, 100))
    reference = list(read_split(root, "train"))
    dataset = HIMShardDataset(root, "train", size=64)
    assert len(dataset) == len(reference) == 5
    for index in (4, 0, 2):  # out of order: random access across shards and row groups
        sample_id, image, alphas = dataset.read_raw(index)
        assert sample_id == reference[index].id
        np.testing.assert_array_equal(image, reference[index].image)
        np.testing.assert_array_equal(alphas, reference[index].alphas)
        item = dataset[index]
        assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
        assert item["alphas"].shape == (len(alphas), 64, 64)
        assert item["orig_size"] == (60, 100) and item["scale"] == pytest.approx(0.64)
        # Letterbox is top-left: rows below round(60 * 0.64) = 38 are padding, alpha 0 and black.
        assert item["alphas"][:, 38:].abs().sum() == 0 and item["image"][:, 38:].abs().sum() == 0
        assert item["alphas"].sum(0).max() <= 1.0 + 1e-5


def test_collate_pads_instances(tmp_path):
    root = make_toy_dataset(tmp_path, num_images=4, shards=1, seed=3, max_people=3)
    dataset = HIMShardDataset(root, "train", size=32)
    items = [dataset[i] for i in range(4)]
    batch = collate_him(items)
    counts = [item["alphas"].shape[0] for item in items]
    k = max(counts)
    assert batch["image"].shape == (4, 3, 32, 32)
    assert batch["alphas"].shape == (4, k, 32, 32)
    assert batch["valid"].sum(1).tolist() == counts
    assert batch["num_instances"].tolist() == counts
    for i, n in enumerate(counts):
        torch.testing.assert_close(batch["alphas"][i, :n], items[i]["alphas"])
        assert batch["alphas"][i, n:].abs().sum() == 0
    assert batch["ids"] == [item["id"] for item in items]


def test_collate_zero_instances_keeps_one_slot():
    item = {
        "id": "empty",
        "image": torch.zeros(3, 8, 8),
        "alphas": torch.zeros(0, 8, 8),
        "boxes": torch.zeros(0, 4),
        "scale": 1.0,
        "orig_size": (8, 8),
    }
    batch = collate_him([item])
    assert batch["alphas"].shape == (1, 1, 8, 8) and not batch["valid"].any()


def test_augment_is_deterministic_and_flips_consistently(tmp_path):
    root = make_toy_dataset(tmp_path, num_images=3, shards=1, seed=5)
    plain = HIMShardDataset(root, "train", size=48)
    first = HIMShardDataset(root, "train", size=48, augment=True, seed=7)
    second = HIMShardDataset(root, "train", size=48, augment=True, seed=7)
    flipped = 0
    for epoch in range(4):
        first.set_epoch(epoch)
        second.set_epoch(epoch)
        for i in range(3):
            a, b, p = first[i], second[i], plain[i]
            torch.testing.assert_close(a["image"], b["image"])
            if torch.equal(a["alphas"], p["alphas"].flip(-1)) and not torch.equal(a["alphas"], p["alphas"]):
                flipped += 1
            else:
                torch.testing.assert_close(a["alphas"], p["alphas"])
    assert 0 < flipped < 12


def test_letterbox_roundtrip_restores_original_size():
    rng = np.random.default_rng(0)
    image, alphas = toy_sample(rng, 90, 50, 2)
    boxed, info = letterbox_image(image, 64)
    assert boxed.shape == (64, 64, 3) and (info.height, info.width) == (64, 36)
    restored = unletterbox(torch.from_numpy(letterbox_mattes(alphas, info)), info, (90, 50)).numpy()
    assert restored.shape == (2, 90, 50)
    # Down then up-sampling blurs the soft edges only slightly; the bulk of each matte survives.
    assert np.abs(restored - alphas).mean() < 0.03


def test_missing_split_names_the_folder(tmp_path):
    root = make_toy_dataset(tmp_path, num_images=2, shards=1)
    with pytest.raises(InputError, match="no shards for split 'test'"):
        HIMShardDataset(root, "test")


def test_dataloader_with_worker_processes(tmp_path):
    from torch.utils.data import DataLoader

    root = make_toy_dataset(tmp_path, num_images=4, shards=2, seed=9)
    dataset = HIMShardDataset(root, "train", size=32)
    dataset[0]  # fills this process's handle cache, which must not travel to the workers
    loader = DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_him)
    ids = [i for batch in loader for i in batch["ids"]]
    assert ids == [dataset.read_raw(i)[0] for i in range(4)]


def test_random_access_across_row_groups(tmp_path):
    # 70 rows in one shard: row groups of 64 and 6 rows; cache of one group, so each jump rereads through ShardFolder
    root = make_toy_dataset(tmp_path, num_images=70, shards=1, size=(12, 10), max_people=1)
    reference = {sample.id: sample for sample in read_split(root, "train")}
    dataset = HIMShardDataset(root, "train", size=16, cache_row_groups=1)
    assert len(dataset) == 70 and dataset.index[64] == (0, 1, 0) and dataset.index[69] == (0, 1, 5)
    for index in (69, 0, 64, 63, 65):
        sample_id, image, alphas = dataset.read_raw(index)
        assert sample_id == f"train_{index:04d}"
        np.testing.assert_array_equal(image, reference[sample_id].image)
        np.testing.assert_array_equal(alphas, reference[sample_id].alphas)
    assert len(dataset._cache) == 1
