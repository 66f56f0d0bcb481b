"""Torch data pipeline over built HIM shards: random-access Dataset, letterbox resize policy, batch collation.

Resize policy (training and inference alike): **letterbox, top-left**, defined in :mod:`himbench.geometry`
(:func:`~himbench.geometry.letterbox_image`, :func:`~himbench.geometry.unletterbox`).

Batch format (what :func:`collate_him` returns; the training protocol in :mod:`himbench.registry` consumes it)::

    image       float32 B x 3 x S x S, RGB in [0, 1]
    alphas      float32 B x K x S x S, visible mattes, zero-padded to K = max instances in the batch (K >= 1)
    valid       bool    B x K, True where ``alphas`` holds a real instance
    boxes       float32 B x K x 4, [x0, y0, x1, y1) in letterboxed pixels (0 where not valid)
    num_instances  int64 B
    scale       float32 B, letterbox scale factor (S / max(H, W))
    orig_size   int64 B x 2, original (H, W)
    ids         list[str] of sample ids

Random access: at construction the dataset reads only Parquet footers and builds an index of (shard, row group,
row); ``__getitem__`` reads the one row group it needs (columns id/image/alphas only, through
:class:`~himbench.shards.ShardFolder`), keeps a few row groups cached per worker, and decodes just the requested row.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from himbench.geometry import letterbox_image, letterbox_mattes
from himbench.shards import RowGroup, ShardFolder, boxes_from_alphas, decode_mattes

__all__ = ["HIMShardDataset", "collate_him"]


class HIMShardDataset(Dataset):
    """Samples of one split of a built shard folder, letterboxed to ``size``.

    ``augment`` applies a random horizontal flip and mild brightness/contrast jitter (seeded per sample by
    ``seed + index + epoch * len``, call :meth:`set_epoch`), so runs are reproducible with any number of workers.
    Each item is a dict: ``image`` float32 3xSxS, ``alphas`` float32 NxSxS, ``boxes`` float32 Nx4, ``id``,
    ``scale``, ``orig_size``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: int = 256,
        augment: bool = False,
        seed: int = 0,
        cache_row_groups: int = 4,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.size = int(size)
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.cache_row_groups = cache_row_groups
        self.folder = ShardFolder(self.root)
        self.shards = self.folder.shards(split, required=True)
        index: list[tuple[int, int, int]] = []
        for s, path in enumerate(self.shards):
            for g, rows in enumerate(self.folder.row_group_sizes(path)):
                index.extend((s, g, r) for r in range(rows))
        self.index = index
        self._cache: OrderedDict[tuple[int, int], RowGroup] = OrderedDict()

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getstate__(self) -> dict:
        # Cached row groups stay with the process that read them (the folder drops its file handles likewise).
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()
        return state

    def _row_group(self, shard: int, group: int) -> RowGroup:
        key = (shard, group)
        rows = self._cache.get(key)
        if rows is None:
            rows = self.folder.read_row_group(self.shards[shard], group, columns=("id", "image", "alphas"))
            self._cache[key] = rows
            while len(self._cache) > self.cache_row_groups:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return rows

    def read_raw(self, index: int) -> tuple[str, np.ndarray, np.ndarray]:
        """Decode sample ``index`` at its stored size: (id, uint8 HxWx3 image, float32 NxHxW alphas).

        Raises :class:`InputError` naming the shard when the row's id is not a plain file name (shards are untrusted
        and callers such as ``predict`` use the id as a folder name) or an image is bad or over the pixel limit."""
        shard, group, row = self.index[index]
        return decode_mattes(self._row_group(shard, group).row(row), self.shards[shard])

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample_id, image, alphas = self.read_raw(index)
        orig_size = image.shape[:2]
        image, info = letterbox_image(image, self.size)
        alphas = letterbox_mattes(alphas, info)
        image_f = image.astype(np.float32) / 255.0
        if self.augment:
            rng = np.random.default_rng(self.seed + index + self.epoch * len(self))
            if rng.random() < 0.5:
                image_f = image_f[:, ::-1]
                alphas = alphas[:, :, ::-1]
            gain, offset = rng.uniform(0.8, 1.2), rng.uniform(-0.08, 0.08)
            image_f = np.clip(image_f * gain + offset, 0.0, 1.0)
        alphas = np.ascontiguousarray(alphas)
        return {
            "id": sample_id,
            "image": torch.from_numpy(np.ascontiguousarray(image_f.transpose(2, 0, 1))),
            "alphas": torch.from_numpy(alphas),
            "boxes": torch.from_numpy(boxes_from_alphas(alphas).astype(np.float32)),
            "scale": float(info.scale),
            "orig_size": tuple(int(v) for v in orig_size),
        }


def collate_him(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into the batch format of the module docstring (instances zero-padded to the batch maximum)."""
    b = len(items)
    size = items[0]["image"].shape[-1]
    k = max(1, max(item["alphas"].shape[0] for item in items))
    alphas = torch.zeros(b, k, size, size, dtype=torch.float32)
    valid = torch.zeros(b, k, dtype=torch.bool)
    boxes = torch.zeros(b, k, 4, dtype=torch.float32)
    for i, item in enumerate(items):
        n = item["alphas"].shape[0]
        alphas[i, :n] = item["alphas"]
        valid[i, :n] = True
        boxes[i, :n] = item["boxes"]
    return {
        "image": torch.stack([item["image"] for item in items]),
        "alphas": alphas,
        "valid": valid,
        "boxes": boxes,
        "num_instances": valid.sum(1),
        "scale": torch.tensor([item["scale"] for item in items], dtype=torch.float32),
        "orig_size": torch.tensor([item["orig_size"] for item in items], dtype=torch.int64),
        "ids": [item["id"] for item in items],
    }
