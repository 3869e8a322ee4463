"""LegoFacesDataModule: every source decoded once into one cached uint8 tensor, batched by indexing it."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch
from torch import Tensor

from lego_vae.data.download import fetch_lego_faces
from lego_vae.data.folder import READING_VERSION, file_digest, find_images, load_folder
from lego_vae.data.ldraw.designs import designs_digest, load_designs
from lego_vae.data.ldraw.labels import design_labels
from lego_vae.data.ldraw.render import RENDER_VERSION, render_in_batches
from lego_vae.data.sheet import on_every_core
from lego_vae.data.splits import SPLITS, TRAIN_ONLY, design_of, design_splits, split_of
from lego_vae.data.synthetic import render_faces
from lego_vae.errors import UserError
from lego_vae.files import save_torch, write_text

RENDER_CHUNK = 1000  # faces per rendering task when many are rendered at once
CACHE_VERSION = 1  # bump when the decoding pipeline changes, so old caches are not reused


def load_cache(path: Path) -> tuple[Tensor, list[str]]:
    """The cached (N, 3, S, S) uint8 images and their names, read once per process per file version (a study
    worker's trials all read the same file: bench/worker_startup.py). Read-only: nothing writes into them."""
    stat = path.stat()
    return _load_cache(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=1)  # one file at a time: a process that reads several sizes keeps only the last
def _load_cache(path: Path, mtime_ns: int, size: int) -> tuple[Tensor, list[str]]:
    cached = torch.load(path, weights_only=True)
    return cached["images"], cached["names"]


def render_in_parallel(n: int, size: int, seed: int) -> tuple[np.ndarray, list[dict]]:
    """Faces 0..n-1 of renderer set `seed` as render_faces gives them, (n, S, S, 3) uint8 and their labels, in
    chunks on every core when there are many (about 6 ms a face at 64 px on one core)."""
    jobs = [(min(RENDER_CHUNK, n - s), size, seed, s) for s in range(0, max(n, 1), RENDER_CHUNK)]
    parts = on_every_core(render_faces, jobs)
    return np.concatenate([p for p, _ in parts]), [label for _, labels in parts for label in labels]


class TensorBatches:
    """Batches of uint8 images drawn by indexing one tensor, shuffled per epoch from (seed, epoch) (Lightning
    calls `sampler.set_epoch`: a resumed run sees the same order); under DDP each rank has its own shard."""

    def __init__(self, images: Tensor, indices: Tensor, batch_size: int, shuffle: bool, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        self.images, self.indices = images, indices
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.epoch, self.rank, self.world_size = 0, rank, world_size
        self.sampler = self  # where Lightning looks for set_epoch
        self.batch_sampler = None  # Lightning inspects it; batching is ours

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation of this epoch."""
        self.epoch = epoch

    def shard(self) -> Tensor:
        """The indices this rank sees this epoch, in order."""
        order = self.indices
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = order[torch.randperm(len(order), generator=gen)]
        return order[self.rank :: self.world_size]

    def __len__(self) -> int:
        return -(-len(range(self.rank, len(self.indices), self.world_size)) // self.batch_size)

    def __iter__(self) -> Iterator[Tensor]:
        # A generator: the permutation is drawn at the first batch, after Lightning's set_epoch.
        order = self.shard().to(self.images.device)
        for start in range(0, len(order), self.batch_size):
            yield self.images[order[start : start + self.batch_size]]  # (B, 3, S, S) uint8


class LegoFacesDataModule(L.LightningDataModule):
    """Lego faces of a source (synthetic | ldraw | folder | lego_faces) as one uint8 tensor N x 3 x S x S."""

    def __init__(self, *, source: str, root: str | None, image_size: int, num_images: int | None,
                 batch_size: int, val_fraction: float, test_fraction: float, seed: int, cache_dir: str,
                 url: str | None, blob: str | None, extra_train_faces: int, max_pixels: int) -> None:
        """The keys of the config's `data` section, documented beside their defaults in conf/data/*.yaml."""
        super().__init__()
        self.source, self.root, self.image_size, self.num_images = source, root, image_size, num_images
        self.batch_size, self.val_fraction, self.test_fraction = batch_size, val_fraction, test_fraction
        self.seed, self.cache_dir, self.url, self.blob = seed, Path(cache_dir), url, blob
        self.extra_train_faces, self.max_pixels = extra_train_faces, max_pixels
        self._keyed: tuple[tuple, dict] | None = None  # the last _key(), with the parameters it was made of
        self.images: Tensor | None = None
        self.names: list[str] = []
        self.split_indices: dict[str, Tensor] = {}
        self.loaders: dict[str, TensorBatches] = {}

    @classmethod
    def from_config(cls, data: Any) -> LegoFacesDataModule:
        """Build from the config's typed `data` section (lego_vae.config.schema.DataConfig)."""
        return cls(**vars(data))

    @classmethod
    def ready(cls, data: Any) -> LegoFacesDataModule:
        """Built from the `data` section, decoded (cached) and split: split_images() works at once."""
        dm = cls.from_config(data)
        dm.prepare_data()  # data errors surface now, before a Trainer or a model exists
        dm.setup("fit")
        return dm

    def _key(self) -> dict:
        """What the cached tensor depends on: the source and its parameters, the size, and for photo sources
        the rules of which files are read and kept (folder.READING_VERSION, max_pixels); for a folder, the
        bytes of every file. Made once per set of parameters: hashing a folder reads all of it."""
        params = (self.source, self.root, self.image_size, self.num_images, self.seed, self.extra_train_faces,
                  self.blob, self.max_pixels)
        if self._keyed is not None and self._keyed[0] == params:
            return self._keyed[1]
        key = {"version": CACHE_VERSION, "source": self.source, "size": self.image_size, "n": self.num_images}
        if self.source in ("synthetic", "ldraw"):
            key["seed"] = self.seed
            if self.extra_train_faces:  # absent when 0: the caches of runs without extra faces stay valid
                key["extra_train"] = self.extra_train_faces
            if self.source == "ldraw":  # the designs shipped, and which of them are training designs
                key.update(designs=designs_digest(), renderer=RENDER_VERSION,
                           split=[self.val_fraction, self.test_fraction])
        elif self.source == "folder":
            key.update(reading=READING_VERSION, max_pixels=self.max_pixels)
            root = Path(str(self.root)).expanduser().resolve()
            # Every file read by name and the hash of its bytes: also an edit that keeps the size and time
            # (exiftool -P) gives a new cache. 2,000 PNGs of 12 kB take 0.1 s, a GB 1.8 s (docs/usage.md).
            files = hashlib.blake2b(digest_size=16)
            for f in find_images(root):
                files.update(f.relative_to(root).as_posix().encode() + b"\0")
                try:
                    files.update(file_digest(f))
                except OSError as exc:  # load_folder skips it and says so; the key only needs to differ
                    files.update(f"unreadable: {type(exc).__name__}".encode())
            key.update(root=str(root), files=files.hexdigest())
        else:
            key.update(reading=READING_VERSION, max_pixels=self.max_pixels, blob=self.blob)
        self._keyed = (params, key)
        return key

    @property
    def cache_path(self) -> Path:
        """Where the decoded tensor of this source, its parameters and image size lives."""
        digest = hashlib.sha1(json.dumps(self._key(), sort_keys=True, allow_nan=False).encode()).hexdigest()
        return self.cache_dir / f"{self.source}-{self.image_size}px-{digest[:16]}.pt"

    def _decode(self) -> tuple[np.ndarray, list[str], list[dict] | None]:
        """(N, S, S, 3) uint8 pixels, a name per image and, for synthetic faces, their factor labels.

        Rendered sources: the extra_train_faces come after the num_images ones, named TRAIN_ONLY..., so
        validation and test stay the faces of num_images alone. LDraw render i shows design i mod the number
        of designs, an extra render a training design (a design's split is a hash of its name, as split_of).
        """
        n, extra = self.num_images or 2600, self.extra_train_faces
        prefix = [""] * n + [TRAIN_ONLY] * extra
        if self.source == "synthetic":
            pixels, labels = render_in_parallel(n + extra, self.image_size, self.seed)
            return pixels, [f"{prefix[i]}{i:06d}" for i in range(n + extra)], labels
        if self.source == "ldraw":  # labels come from the designs' names (labels())
            designs = load_designs()
            which = [i % len(designs) for i in range(n)]
            train = np.flatnonzero(design_splits(self.seed, self.val_fraction, self.test_fraction) == 0)
            which += [int(train[j % len(train)]) for j in range(extra)] if len(train) else []
            pixels = render_in_batches(designs, which, self.image_size, self.seed)
            return pixels, [f"{prefix[i]}{designs.names[d]}#{i:06d}" for i, d in enumerate(which)], None
        root = self.root
        if self.source == "lego_faces":
            root = fetch_lego_faces(str(self.url), str(self.blob), self.cache_dir)
        if root is None:
            raise UserError("data.root: the folder source needs a path (data.root=/path/to/images)")
        pixels, names = load_folder(Path(str(root)).expanduser(), self.image_size, limit=self.num_images,
                                    max_pixels=self.max_pixels)
        return pixels, names, None

    def prepare_data(self) -> None:
        """Decode the source once and cache it on disk; a later run finds the cache and skips this."""
        path = self.cache_path
        if path.exists():
            return
        pixels, names, labels = self._decode()
        path.parent.mkdir(parents=True, exist_ok=True)
        images = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))  # (N, 3, S, S) uint8
        # Each file whole or not at all (lego_vae.files), the labels first: a cache found complete has them.
        if labels is not None:
            write_text(path.with_suffix(".labels.json"), json.dumps(labels, allow_nan=False))
        save_torch({"images": images, "names": names}, path)

    def labels(self) -> list[dict] | None:
        """The factor labels of the rendered faces (None for photo sources)."""
        if self.source == "ldraw":
            assert self.names, "call setup() first"
            return design_labels(self.names, self.seed)
        path = self.cache_path.with_suffix(".labels.json")
        return json.loads(path.read_text()) if path.exists() else None

    def setup(self, stage: str | None = None) -> None:
        """Load the cached tensor and split it (once); make this rank's loaders (each call)."""
        if self.images is None:
            if not self.cache_path.exists():
                self.prepare_data()
            self.images, self.names = load_cache(self.cache_path)
            # LDraw: by design, so validation and test show designs that no training step saw.
            keys = [design_of(name) for name in self.names] if self.source == "ldraw" else self.names
            split = torch.from_numpy(split_of(keys, self.seed, self.val_fraction, self.test_fraction))
            split[[i for i, name in enumerate(self.names) if name.startswith(TRAIN_ONLY)]] = 0
            for i, name in enumerate(SPLITS):
                idx = torch.nonzero(split == i).flatten()
                if len(idx) == 0:
                    raise UserError(
                        f"data: the {name} split of {len(self.names)} images is empty; "
                        "use more images (data.num_images) or larger data.val_fraction/data.test_fraction"
                    )
                self.split_indices[name] = idx
        rank, world = (0, 1) if self.trainer is None else (self.trainer.global_rank, self.trainer.world_size)
        for name, idx in self.split_indices.items():
            self.loaders[name] = TensorBatches(self.images, idx, self.batch_size, name == "train", self.seed,
                                               rank, world)

    def to_device(self, device: torch.device) -> None:
        """Move the whole uint8 tensor to the training device when it fits, so no step waits on the host."""
        assert self.images is not None, "call setup() first"
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if self.images.numel() > free // 4:  # leave most of the memory to the model
                return
        self.images = self.images.to(device)
        for loader in self.loaders.values():
            loader.images = self.images

    def describe(self) -> str:
        """One line: the source, the number of images, the split and the image size."""
        assert self.images is not None, "call setup() first"
        sizes = " / ".join(f"{name} {len(self.split_indices[name]):,}" for name in SPLITS)
        return f"{self.source} faces, {len(self.images):,} images ({sizes}), {self.image_size} px"

    def split_images(self, split: str) -> Tensor:
        """All uint8 images of one split, in order."""
        assert self.images is not None, "call setup() first"
        return self.images[self.split_indices[split].to(self.images.device)]

    def held_out(self, first: str = "test", at_least: int = 2) -> tuple[Tensor, list[str]]:
        """Faces no training step saw, (N, 3, S, S) uint8, and a label each ("test face 0", ...): split
        `first` ("test" or "val", else ValueError), then the other one when `first` has fewer than at_least
        (a morph needs two; the smallest data sets have one test face)."""
        if first not in ("test", "val"):
            raise ValueError(f"held_out: first must be 'test' or 'val', got {first!r}")
        other = "val" if first == "test" else "test"
        order = [first] if len(self.split_indices[first]) >= at_least else [first, other]
        images = torch.cat([self.split_images(split) for split in order])
        labels = [f"{split} face {i}" for split in order for i in range(len(self.split_indices[split]))]
        return images, labels

    def split_labels(self, split: str) -> list[dict] | None:
        """The factor labels of one split, in the order of split_images(split); None for photo sources."""
        assert self.images is not None, "call setup() first"
        labels = self.labels()
        return None if labels is None else [labels[i] for i in self.split_indices[split].tolist()]

    def on_after_batch_transfer(self, batch: Tensor, dataloader_idx: int) -> Tensor:
        # uint8 (B, 3, S, S) -> float in [0, 1], on the device, one batch at a time.
        return batch.float().div_(255) if batch.dtype == torch.uint8 else batch

    def train_dataloader(self) -> TensorBatches:
        return self.loaders["train"]

    def val_dataloader(self) -> TensorBatches:
        return self.loaders["val"]

    def test_dataloader(self) -> TensorBatches:
        return self.loaders["test"]
