"""Very large images: skipped before decoding with their size and the limit, no raw Pillow warning (#25, kind 9)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lego_vae.cli import run_app
from lego_vae.config import validate
from lego_vae.data.folder import load_folder
from lego_vae.data.images import TooLargeImageError, load_image
from lego_vae.errors import UserError
from tests.conftest import data_module
from tests.data.helpers import black_png

SIZE = 16


def _faces(root: Path, n: int) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / f"face{i}.png")
    return [f"face{i}.png" for i in range(n)]


def _load(root: Path, **kw) -> tuple[list[str], list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, kept = load_folder(root, SIZE, **kw)
    return kept, caught


def test_the_issue_s_huge_pngs_are_skipped_with_their_size_at_the_default_limit(tmp_path: Path) -> None:
    # The issue's two scans, as 1-bit PNGs of a few kB: 196 Mpx (past Pillow's own limit, which refuses to
    # open it) and 121 Mpx (under it: Pillow warned "decompression bomb" and the old reading took 3.2 GB).
    root = tmp_path / "faces"
    faces = _faces(root, 4)
    black_png(root / "scan196.png", 14000, 14000)
    black_png(root / "scan121.png", 11000, 11000)
    kept, caught = _load(root)
    assert kept == faces
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert not [w for w in caught if "decompression bomb" in str(w.message).lower()]
    lines = [str(w.message) for w in caught]
    assert lines == [f"skipped 2 images over the limit of 89,478,485 pixels (data.max_pixels) under '{root}', "
                     "before decoding: scan121.png (11000 x 11000 = 121,000,000 pixels), "
                     "scan196.png (196,000,000 pixels)"]


def test_one_image_over_the_limit_is_one_line_naming_its_size(tmp_path: Path) -> None:
    path = black_png(tmp_path / "scan.png", 11000, 11000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a raw Pillow warning would fail the test
        with pytest.raises(TooLargeImageError) as info:
            load_image(path, SIZE)
        assert str(info.value) == (f"cannot read image '{path}': 11000 x 11000 = 121,000,000 pixels, "
                                   "over the limit of 89,478,485 (data.max_pixels)")
        huge = black_png(tmp_path / "huge.png", 14000, 14000)
        with pytest.raises(UserError, match=r"'.*huge.png': 196,000,000 pixels, over the limit of 89,478,485 "):
            load_image(huge, SIZE)


def test_data_max_pixels_sets_the_limit_and_the_cache(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    faces = _faces(root, 30)
    Image.new("RGB", (40, 30), (200, 20, 20)).save(root / "wide.png")  # 1,200 pixels
    kept, caught = _load(root, max_pixels=1000)
    assert kept == sorted(faces)
    assert [str(w.message) for w in caught] == [
        f"skipped 1 image over the limit of 1,000 pixels (data.max_pixels) under '{root}', before decoding: "
        "wide.png (40 x 30 = 1,200 pixels)"]
    # Raising the limit reads it: another cache, since which images are read changed.
    low, high = (data_module(source="folder", root=str(root), image_size=SIZE, num_images=None,
                                     cache_dir=str(tmp_path / "cache"), max_pixels=n) for n in (1000, 2000))
    with pytest.warns(UserWarning, match="wide.png"):
        low.setup("fit")
    high.setup("fit")
    assert low.cache_path != high.cache_path
    assert len(low.images) == 30 and len(high.images) == 31
    # Only images over the limit: one line with each one's size.
    only = tmp_path / "only"
    Image.new("RGB", (40, 30)).save(only.mkdir() or only / "wide.png")
    with pytest.raises(UserError, match=r"no readable image .*wide.png \(40 x 30 = 1,200 pixels\) over the limit"):
        load_folder(only, SIZE, max_pixels=1000)


def test_a_limit_past_pillow_s_own_is_refused(make_cfg) -> None:
    with pytest.raises(UserError, match=r"data.max_pixels=200000000: must be an integer in \[1, 178956970\]"):
        validate(make_cfg("data=folder", "data.root=/tmp", "data.max_pixels=200000000"))


def test_the_skip_line_is_one_warning_line_on_the_command_line(tmp_path: Path, capsys) -> None:
    root = tmp_path / "faces"
    _faces(root, 3)
    black_png(root / "scan.png", 14000, 14000)
    run_app(load_folder, root, SIZE)  # what every command runs its work in
    assert capsys.readouterr().err.splitlines() == [
        f"warning: skipped 1 image over the limit of 89,478,485 pixels (data.max_pixels) under '{root}', "
        "before decoding: scan.png (196,000,000 pixels)"]
