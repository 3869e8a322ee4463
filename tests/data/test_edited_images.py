"""An image edited in place, keeping its size and modification time, gets a new cache (#25, kind 8)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lego_vae.data.datamodule import LegoFacesDataModule
from lego_vae.data.images import load_image
from tests.conftest import data_module

SIZE = 16
ORIENTATION = 0x0112  # the EXIF tag


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return exif.tobytes()


def _dm(tmp_path: Path, root: Path) -> LegoFacesDataModule:
    dm = data_module(source="folder", root=str(root), image_size=SIZE, num_images=None, batch_size=8,
                             cache_dir=str(tmp_path / "cache"))
    dm.setup("fit")
    return dm


def test_an_exif_rotation_written_in_place_gives_a_new_cache(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        pixels[:, :16] = (255, 0, 0)  # red on the left: a quarter turn moves it to the top
        Image.fromarray(pixels).save(root / f"face{i:02d}.jpg", quality=95, exif=_exif(1))
    before = _dm(tmp_path, root)
    row = before.names.index("face07.jpg")

    # What `exiftool -P -Orientation#=6 face07.jpg` does: the EXIF block rewritten with the new value (the
    # same length, so the same file size), then the old modification time put back with utime.
    path = root / "face07.jpg"
    old = os.stat(path)
    data = path.read_bytes()
    assert data.count(_exif(1)) == 1
    path.write_bytes(data.replace(_exif(1), _exif(6)))
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    new = os.stat(path)
    assert (new.st_size, new.st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    with Image.open(path) as img:
        assert img.getexif()[ORIENTATION] == 6

    after = _dm(tmp_path, root)
    assert after.cache_path != before.cache_path
    assert after.names == before.names
    # The edited face is read again, upright by its new orientation (red now on top); the others are unchanged.
    turned = after.images[row].permute(1, 2, 0).numpy()
    assert np.array_equal(turned, load_image(path, SIZE))
    assert turned[0, :, 0].min() > 200 and not torch.equal(after.images[row], before.images[row])
    others = [i for i in range(len(after.names)) if i != row]
    assert torch.equal(after.images[others], before.images[others])
    # Nothing changed: the same cache is found again.
    assert _dm(tmp_path, root).cache_path == after.cache_path
