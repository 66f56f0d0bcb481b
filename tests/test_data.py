"""HIMShardDataset, letterbox policy and collate_him, on tiny shards (soft ellipse "people", tests/helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import make_toy_dataset, toy_sample

from himbench.data import HIMShardDataset, collate_him
from himbench.geometry import letterbox_image, letterbox_mattes, unletterbox
from himbench.io import InputError
from himbench.shards import read_split


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
