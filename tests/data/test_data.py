"""The datamodule: splits, batches from one uint8 tensor, the cache, and the three sources."""

import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from lego_vae.config import validate
from lego_vae.data.datamodule import (
    RENDER_CHUNK,
    LegoFacesDataModule,
    TensorBatches,
    render_in_parallel,
    split_of,
)
from lego_vae.data.download import git_blob_sha1
from lego_vae.data.synthetic import render_faces
from lego_vae.errors import UserError
from tests.conftest import data_module


def test_splits_are_disjoint_deterministic_and_stable() -> None:
    names = [f"{i:06d}" for i in range(4000)]
    split = split_of(names, seed=0, val_fraction=0.1, test_fraction=0.1)
    assert set(np.unique(split)) == {0, 1, 2}
    assert np.array_equal(split, split_of(names, 0, 0.1, 0.1))
    # Growing the set never moves an image to another split.
    assert np.array_equal(split_of(names[:1000], 0, 0.1, 0.1), split[:1000])
    assert abs((split == 1).mean() - 0.1) < 0.02 and abs((split == 2).mean() - 0.1) < 0.02
    assert not np.array_equal(split, split_of(names, 1, 0.1, 0.1))


def _dm(tmp_path, **kw) -> LegoFacesDataModule:
    args = {"source": "synthetic", "image_size": 16, "num_images": 200, "batch_size": 16,
            "cache_dir": str(tmp_path / "cache"), **kw}
    dm = data_module(**args)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_split_indices_partition_the_images(tmp_path) -> None:
    dm = _dm(tmp_path)
    parts = [set(dm.split_indices[s].tolist()) for s in ("train", "val", "test")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert set().union(*parts) == set(range(200))
    assert dm.images.shape == (200, 3, 16, 16) and dm.images.dtype == torch.uint8


def test_train_batches_cover_each_image_once_per_epoch_in_a_seeded_order(tmp_path) -> None:
    dm = _dm(tmp_path)
    loader = dm.train_dataloader()

    def epoch_order(epoch: int) -> list[int]:
        loader.set_epoch(epoch)
        return loader.shard().tolist()

    first = epoch_order(0)
    assert sorted(first) == sorted(dm.split_indices["train"].tolist())
    assert epoch_order(0) == first and epoch_order(1) != first
    batches = list(loader)
    assert len(batches) == len(loader) and sum(len(b) for b in batches) == len(first)
    assert all(b.dtype == torch.uint8 and b.shape[1:] == (3, 16, 16) for b in batches)
    loader.set_epoch(1)
    assert torch.equal(torch.cat(list(loader)), dm.images[torch.tensor(epoch_order(1))])
    # Validation is not shuffled.
    assert torch.equal(torch.cat(list(dm.val_dataloader())), dm.split_images("val"))
    # The batch the module sees is float in [0, 1].
    x = dm.on_after_batch_transfer(batches[0], 0)
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_ranks_take_disjoint_shards_that_cover_the_epoch() -> None:
    images = torch.zeros(50, 3, 8, 8, dtype=torch.uint8)
    shards = []
    for rank in range(2):
        loader = TensorBatches(images, torch.arange(50), batch_size=8, shuffle=True, seed=3)
        loader.rank, loader.world_size = rank, 2
        loader.set_epoch(4)
        shards.append(loader.shard().tolist())
    assert not set(shards[0]) & set(shards[1]) and sorted(shards[0] + shards[1]) == list(range(50))


def test_the_cache_is_reused_and_keyed_on_size(tmp_path, monkeypatch) -> None:
    dm = _dm(tmp_path)
    assert dm.cache_path.is_file()
    # Reused: the second module decodes nothing (it used to be timed, a verdict a busy machine could fail).
    with monkeypatch.context() as m:
        m.setattr(LegoFacesDataModule, "_decode", lambda self: pytest.fail("decoded again: the cache was not reused"))
        again = _dm(tmp_path)
    assert torch.equal(again.images, dm.images)
    assert _dm(tmp_path, image_size=32).cache_path != dm.cache_path
    assert _dm(tmp_path, seed=1).cache_path != dm.cache_path
    labels = dm.labels()
    assert len(labels) == 200 and {"skin", "eyes", "mouth"} <= set(labels[0])


def test_a_process_loads_a_cache_file_once_and_again_when_it_changes(tmp_path) -> None:
    """A study worker's trials all set up the same data: the tensor is read from disk once, until the file changes."""
    dm = _dm(tmp_path)
    again = _dm(tmp_path)
    assert again.images is dm.images  # the same tensor, not a second load
    cached = torch.load(dm.cache_path, weights_only=True)
    cached["images"] = 255 - cached["images"]
    torch.save(cached, dm.cache_path)  # a rewritten cache (new mtime): read anew
    fresh = _dm(tmp_path)
    assert fresh.images is not dm.images and torch.equal(fresh.images, 255 - dm.images)


def test_folder_source_skips_broken_files(tmp_path) -> None:
    root = tmp_path / "faces"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(30):
        Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(root / "sub" / f"{i}.png")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        dm = _dm(tmp_path, source="folder", root=str(root), num_images=None)
    assert dm.images.shape == (30, 3, 16, 16)


def test_folder_source_missing_root_is_one_line(tmp_path) -> None:
    with pytest.raises(UserError, match="data.root: folder '.*nowhere' does not exist"):
        _dm(tmp_path, source="folder", root=str(tmp_path / "nowhere"))


def test_lego_faces_source_from_a_verified_zip(tmp_path) -> None:
    # The published layout: a top folder dataset/ of JPEG product photos named by Bricklink part.
    archive = tmp_path / "served" / "dataset.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(40):
            path = tmp_path / f"3626cpb{1200 + i}.jpg"
            photo = Image.new("RGB", (30, 24), (255, 255, 255))
            photo.paste((250, 200, 0), (8, 4, 22, 20))  # a yellow head on white
            x, y = 16 + i % 5, 4 + 2 * (i // 5)  # right of the first 16 px JPEG block, so the corner stays white
            photo.paste((20, 20, 20), (x, y, x + 2, y + 2))  # an eye in a place of its own: 40 different photos
            photo.save(path, quality=90)
            zf.write(path, f"dataset/{path.name}")
    blob = git_blob_sha1(archive)
    dm = _dm(tmp_path, source="lego_faces", num_images=None, url=archive.as_uri(), blob=blob)
    assert dm.images.shape == (40, 3, 16, 16)
    assert int(dm.images[0, :, 0, 0].min()) >= 250  # the white background survived the centre crop
    # A second run at another size reads the extracted folder again: no download (the served zip is gone).
    archive.unlink()
    again = _dm(tmp_path, source="lego_faces", num_images=None, url=archive.as_uri(), blob=blob, image_size=8)
    assert again.images.shape == (40, 3, 8, 8)
    with pytest.raises(UserError, match="checksum mismatch"):
        served = tmp_path / "other.zip"
        served.write_bytes(b"not the pinned zip")
        _dm(tmp_path / "other", source="lego_faces", url=served.as_uri(), blob="0" * 40)


def test_extra_train_faces_only_grow_the_train_split(tmp_path) -> None:
    base = data_module(image_size=16, num_images=60, cache_dir=str(tmp_path))
    more = data_module(image_size=16, num_images=60, cache_dir=str(tmp_path), extra_train_faces=50)
    for dm in (base, more):
        dm.setup("fit")
    assert base.cache_path != more.cache_path
    for split in ("val", "test"):  # the same held-out faces, pixel for pixel: runs with and without compare
        assert torch.equal(base.split_images(split), more.split_images(split))
    assert len(more.split_indices["train"]) == len(base.split_indices["train"]) + 50
    extra = more.split_images("train")[-50:]
    rendered, labels = render_faces(50, size=16, seed=0, start=60)  # renderer faces 60..109
    assert torch.equal(extra, torch.from_numpy(rendered).permute(0, 3, 1, 2))
    assert more.split_labels("train")[-50:] == labels
    # No extra face is a copy of a held-out one.
    held = {bytes(x.numpy()) for x in torch.cat([more.split_images("val"), more.split_images("test")])}
    assert not any(bytes(x.numpy()) in held for x in extra)


def test_many_faces_render_in_parallel_exactly_as_in_one_process() -> None:
    n = RENDER_CHUNK + 7
    parallel, labels = render_in_parallel(n, 8, seed=3)
    serial, serial_labels = render_faces(n, size=8, seed=3)
    assert np.array_equal(parallel, serial) and labels == serial_labels


def test_extra_train_faces_need_the_synthetic_source(make_cfg) -> None:
    with pytest.raises(UserError, match="data.extra_train_faces=5: only the synthetic and ldraw sources render more faces"):
        validate(make_cfg("data=folder", "data.root=/tmp", "data.extra_train_faces=5"))
