"""Which files the folder source reads: no hidden or tool folders, and every byte-identical image once."""

from __future__ import annotations

import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lego_vae.data.datamodule import LegoFacesDataModule, split_of
from lego_vae.data.download import git_blob_sha1
from lego_vae.data.folder import find_images, load_folder
from tests.conftest import data_module

SIZE = 16


def _faces(root: Path, n: int, seed: int = 0) -> list[str]:
    """n different random 'faces' face000.jpg ... under root; their names."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"face{i:03d}.jpg" for i in range(n)]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(root / name, quality=95)
    return names


def _dm(tmp_path: Path, root: Path, **kw) -> LegoFacesDataModule:
    dm = data_module(source="folder", root=str(root), image_size=SIZE, num_images=None, batch_size=8,
                             cache_dir=str(tmp_path / "cache"), **kw)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _shared_between_splits(dm: LegoFacesDataModule) -> int:
    """How many test or val images have a pixel-identical twin in the train split."""
    train = {bytes(x.numpy()) for x in dm.split_images("train")}
    return sum(bytes(x.numpy()) in train for split in ("val", "test") for x in dm.split_images(split))


def test_a_notebook_checkpoint_copy_is_not_a_second_face(tmp_path: Path) -> None:
    # The folder: 40 faces and Jupyter's byte copy of face009.jpg. The original's name hashes into
    # the test split and the copy's into train, so the copy leaked a test face into training.
    root = tmp_path / "faces"
    names = _faces(root, 40)
    (root / ".ipynb_checkpoints").mkdir()
    shutil.copyfile(root / "face009.jpg", root / ".ipynb_checkpoints" / "face009-checkpoint.jpg")
    split = split_of(["face009.jpg", ".ipynb_checkpoints/face009-checkpoint.jpg"], 0, 0.1, 0.1)
    assert split.tolist() == [2, 0]  # test and train: the setting of the issue
    with pytest.warns(UserWarning, match=r"skipped 1 hidden or tool entry .*\.ipynb_checkpoints/"):
        dm = _dm(tmp_path, root)
    assert len(dm.images) == 40 and dm.names == names
    assert _shared_between_splits(dm) == 0


@pytest.mark.parametrize("junk", [
    "@eaDir/face001.jpg/SYNOFILE_THUMB_M.jpg",  # Synology's thumbnails: one folder per photo
    "#recycle/face_old.jpg",  # Synology's recycle bin
    "@__thumb/face001.jpg",  # QNAP
    "@Recycle/face_old.png",  # QNAP
    "$RECYCLE.BIN/S-1-5-21-1/$RABC123.jpg",  # Windows
    "$Recycle.Bin/S-1-5-21-1/$RABC124.jpg",  # Windows, as it spells it since Vista
    "System Volume Information/tracking.jpg",
    ".Trash-1000/files/face_old.jpg",  # freedesktop trash on a removable drive
    ".thumbnails/normal/0123abcd.png",
    "sub/.cache/face001.webp",
    "sub/.face_hidden.jpg",
    "__MACOSX/._face001.jpg",
    "lost+found/#12345.jpg",
])
def test_hidden_thumbnail_and_system_folders_are_not_faces(tmp_path: Path, junk: str) -> None:
    # A hidden folder as the root itself is fine: only what is below it is skipped.
    root = tmp_path / ".my-faces"
    names = _faces(root, 5)
    path = root / junk
    path.parent.mkdir(parents=True, exist_ok=True)
    # A resized thumbnail: not byte-identical to its face, so only the folder rules can keep it out.
    Image.open(root / "face001.jpg").resize((12, 12)).save(path, format="PNG" if junk.endswith(".png") else "JPEG")
    assert [p.relative_to(root).as_posix() for p in find_images(root)] == names
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixels, kept = load_folder(root, SIZE)
    assert kept == names and len(pixels) == 5
    lines = [str(w.message) for w in caught]
    assert len(lines) == 1 and "skipped 1 hidden or tool entry" in lines[0] and "\n" not in lines[0], lines


def test_byte_identical_images_are_kept_once_with_one_line(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    names = _faces(root, 12)
    (root / "backup").mkdir()
    shutil.copyfile(root / "face003.jpg", root / "backup" / "face003.jpg")  # a copy in an ordinary folder
    shutil.copyfile(root / "face007.jpg", root / "face007 (1).jpg")  # the browser's second download
    (root / "linked").mkdir()
    (root / "linked" / "face010.jpg").symlink_to(root / "face010.jpg")  # a link is the same bytes too
    # The same picture re-encoded is another file: kept (only byte-identical copies are dropped).
    Image.open(root / "face005.jpg").save(root / "face005.png")
    with pytest.warns(UserWarning, match=r"dropped 3 byte-identical copies") as caught:
        pixels, kept = load_folder(root, SIZE)
    line = next(str(w.message) for w in caught if "byte-identical" in str(w.message))
    assert "backup/face003.jpg (= face003.jpg)" in line and "face007 (1).jpg (= face007.jpg)" in line
    assert "linked/face010.jpg (= face010.jpg)" in line and "\n" not in line
    # Each kept once, under its most original name: fewest folders, then shortest.
    assert kept == sorted([*names, "face005.png"])
    assert len(pixels) == 13
    # num_images counts distinct images: the copies take no places.
    _, first = load_folder(root, SIZE, limit=5)
    assert first == names[:5]


def test_a_copy_added_later_gets_a_new_cache_and_stays_out(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    _faces(root, 30)
    dm = _dm(tmp_path, root)
    before = dm.cache_path
    # A hidden copy changes nothing that is read: the same cache, the same 30 faces.
    (root / ".ipynb_checkpoints").mkdir()
    shutil.copyfile(root / "face001.jpg", root / ".ipynb_checkpoints" / "face001-checkpoint.jpg")
    assert _dm(tmp_path, root).cache_path == before
    # An ordinary copy changes the listing: a new cache, decoded again, where the copy is dropped.
    shutil.copyfile(root / "face002.jpg", root / "face002-copy.jpg")
    with pytest.warns(UserWarning, match="dropped 1 byte-identical copy"):
        again = _dm(tmp_path, root)
    assert again.cache_path != before and len(again.images) == 30 and _shared_between_splits(again) == 0
    # The image keeps its name, so it stays in its split.
    assert again.names == dm.names and torch.equal(again.images, dm.images)


def test_the_lego_faces_zip_goes_through_the_same_rules(tmp_path: Path) -> None:
    archive = tmp_path / "served" / "dataset.zip"
    archive.parent.mkdir()
    src = tmp_path / "src"
    names = _faces(src, 20)
    with zipfile.ZipFile(archive, "w") as zf:
        for name in names:
            zf.write(src / name, f"dataset/{name}")
        zf.write(src / "face004.jpg", "dataset/.ipynb_checkpoints/face004-checkpoint.jpg")
        zf.write(src / "face005.jpg", "dataset/@eaDir/face005.jpg/SYNOFILE_THUMB_S.jpg")
        zf.write(src / "face006.jpg", "dataset/face006_copy.jpg")
    with pytest.warns(UserWarning, match="dropped 1 byte-identical copy"):
        dm = data_module(source="lego_faces", image_size=SIZE, num_images=None, batch_size=8,
                                 cache_dir=str(tmp_path / "cache"), url=archive.as_uri(), blob=git_blob_sha1(archive))
        dm.prepare_data()
        dm.setup("fit")
    assert dm.names == [f"dataset/{name}" for name in names]
    extracted = tmp_path / "cache" / "lego_faces" / git_blob_sha1(archive) / "images" / "dataset"
    assert not (extracted / ".ipynb_checkpoints").exists() and not (extracted / "@eaDir").exists()
