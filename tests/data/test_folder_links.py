"""Symbolic links under data.root: linked folders read once each, loops stopped, broken links said (#25, kind 5)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lego_vae.data.folder import find_images, load_folder
from lego_vae.errors import UserError
from tests.conftest import data_module

SIZE = 16


def _faces(folder: Path, prefix: str, n: int, seed: int) -> list[str]:
    """n different random faces <prefix>0.png ... in folder; their names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"{prefix}{i}.png")
    return [f"{prefix}{i}.png" for i in range(n)]


def _load(root: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """load_folder(root) with every warning line it gives."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixels, kept = load_folder(root, SIZE)
    lines = [str(w.message) for w in caught]
    assert all("\n" not in line for line in lines), lines
    return pixels, kept, lines


def test_a_linked_sub_folder_is_read_and_counted(tmp_path: Path) -> None:
    # The folder: faces of one's own, and a sub-folder linked from another disk.
    root, elsewhere = tmp_path / "faces", tmp_path / "disk2" / "more_faces"
    own = _faces(root, "own", 6, seed=0)
    linked = _faces(elsewhere / "nested", "far", 4, seed=1)
    shutil.copyfile(root / "own2.png", elsewhere / "own2-copy.png")  # a copy across the link is still one image
    (root / "more").symlink_to(elsewhere, target_is_directory=True)
    pixels, kept, lines = _load(root)
    assert kept == sorted(own + [f"more/nested/{n}" for n in linked])
    assert len(pixels) == 10
    through = [line for line in lines if "through symbolic links" in line]
    assert through == [f"read 4 of 10 images under '{root}' through symbolic links (1 linked folder: more/ -> {elsewhere})"]
    assert any("dropped 1 byte-identical copy" in line and "more/own2-copy.png (= own2.png)" in line for line in lines)


def test_loops_and_second_links_are_entered_once(tmp_path: Path) -> None:
    root, a, b = tmp_path / "faces", tmp_path / "a", tmp_path / "b"
    own = _faces(root / "sub", "own", 3, seed=0)
    in_a, in_b = _faces(a, "a", 2, seed=1), _faces(b, "b", 2, seed=2)
    (a / "to_b").symlink_to(b, target_is_directory=True)  # a -> b -> a: a loop outside the root
    (b / "to_a").symlink_to(a, target_is_directory=True)
    (root / "link_a").symlink_to(a, target_is_directory=True)
    (root / "same_a").symlink_to(a, target_is_directory=True)  # the same folder by a second link
    (root / "sub" / "again").symlink_to(root / "sub", target_is_directory=True)  # a link to its own folder
    (root / "sub" / "up").symlink_to("..", target_is_directory=True)  # a link to an ancestor (relative)
    (root / "around").symlink_to(tmp_path, target_is_directory=True)  # above the root: holds the root and a, b
    pixels, kept, lines = _load(root)
    expected = sorted([f"sub/{n}" for n in own] + [f"link_a/{n}" for n in in_a] + [f"link_a/to_b/{n}" for n in in_b])
    assert kept == expected and len(pixels) == 7  # each image once: no copy of a folder was read
    assert not any("byte-identical" in line for line in lines), lines
    entered = [line for line in lines if line.startswith("did not enter")]
    assert len(entered) == 1, lines
    line = entered[0]
    assert line.startswith(f"did not enter 5 linked folders under '{root}' (each folder is read once): ")
    assert f"around/ (a loop back to '{tmp_path.resolve()}', a folder above it)" in line
    assert "link_a/to_b/to_a/ (= link_a/)" in line and "same_a/ (= link_a/)" in line
    assert "sub/again/ (a loop back to sub/, a folder above it)" in line
    assert "sub/up/ (a loop back to ./, a folder above it)" in line
    assert "through symbolic links (2 linked folders: link_a/ -> " in "".join(lines)


def test_a_linked_file_and_a_broken_link(tmp_path: Path) -> None:
    root, outside = tmp_path / "faces", tmp_path / "outside"
    own = _faces(root, "own", 4, seed=0)
    far = _faces(outside, "far", 1, seed=1)
    (root / "far.png").symlink_to(outside / far[0])
    (root / "gone.png").symlink_to(tmp_path / "deleted.png")  # a dangling link: its picture was moved away
    (root / "old_faces").symlink_to(tmp_path / "unmounted", target_is_directory=True)  # a folder that is not there
    pixels, kept, lines = _load(root)
    assert kept == sorted([*own, "far.png"]) and len(pixels) == 5
    assert f"read 1 of 5 images under '{root}' through symbolic links" in lines
    broken = [line for line in lines if "broken symbolic link" in line]
    assert broken == [f"skipped 2 broken symbolic links under '{root}' (nothing at the target): "
                      f"gone.png -> {tmp_path / 'deleted.png'}, old_faces -> {tmp_path / 'unmounted'}"]


def test_a_folder_of_broken_links_names_them(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    root.mkdir()
    (root / "a.png").symlink_to(tmp_path / "moved" / "a.png")
    with pytest.raises(UserError, match=r"no images .*; broken symbolic links: a.png -> ") as info:
        load_folder(root, SIZE)
    assert "\n" not in str(info.value)


def test_the_cache_sees_the_linked_folder(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "faces", tmp_path / "elsewhere"
    _faces(root, "own", 20, seed=0)
    _faces(elsewhere, "far", 10, seed=1)
    (root / "more").symlink_to(elsewhere, target_is_directory=True)
    assert len(find_images(root)) == 30
    with pytest.warns(UserWarning, match="read 10 of 30 images"):
        dm = data_module(source="folder", root=str(root), image_size=SIZE, num_images=None,
                                 cache_dir=str(tmp_path / "cache"))
        dm.prepare_data()
        dm.setup("fit")
    assert len(dm.images) == 30
    # A face added in the linked folder is a new listing: a new cache.
    before = dm.cache_path
    _faces(elsewhere / "new", "new", 1, seed=2)
    again = data_module(source="folder", root=str(root), image_size=SIZE, num_images=None,
                                cache_dir=str(tmp_path / "cache"))
    assert again.cache_path != before
