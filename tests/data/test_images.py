"""Decoding image files of every Pillow mode, and the `folder` data source built on it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lego_vae.data.folder import find_images, load_folder
from lego_vae.data.images import IMAGE_SUFFIXES, UnreadableImageError, load_image, to_rgb_square
from lego_vae.errors import UserError

SIZES = (16, 32)
WIDTH, HEIGHT = 48, 40


def _gradient(mode: str) -> Image.Image:
    """A non-uniform picture in the given mode, so resizing and conversion have something to do."""
    ramp = np.linspace(0, 255, WIDTH, dtype=np.float64)[None, :].repeat(HEIGHT, axis=0)
    rgb = np.stack([ramp, ramp[::-1], np.full_like(ramp, 128)], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB").convert(mode)


def _palette_with_transparency() -> Image.Image:
    """A palette image whose index 0 (left half) is transparent via tRNS."""
    img = Image.new("P", (WIDTH, HEIGHT), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 - 2) * 3)
    img.paste(1, (WIDTH // 2, 0, WIDTH, HEIGHT))
    img.info["transparency"] = 0
    return img


def _rgba_half_transparent() -> Image.Image:
    """Left half fully transparent (and black underneath), right half opaque red."""
    arr = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    arr[:, WIDTH // 2 :] = (255, 0, 0, 255)
    return Image.fromarray(arr, "RGBA")


def _la_half_transparent() -> Image.Image:
    """Left half transparent, right half opaque black."""
    arr = np.zeros((HEIGHT, WIDTH, 2), dtype=np.uint8)
    arr[:, WIDTH // 2 :, 1] = 255
    return Image.fromarray(arr, "LA")


def _sixteen_bit(value: int) -> Image.Image:
    """A 16-bit grayscale image at one level, as Pillow decodes 16-bit PNGs."""
    return Image.fromarray(np.full((HEIGHT, WIDTH), value, dtype=np.uint16))


def _mode_i(value: int) -> Image.Image:
    """A 32-bit integer image holding 16-bit samples, as older Pillows decode 16-bit PNGs."""
    return Image.fromarray(np.full((HEIGHT, WIDTH), value, dtype=np.int32), "I")


# (label, image factory, suffixes the format can store it as)
CASES = [
    ("RGB", lambda: _gradient("RGB"), (".png", ".jpg", ".jpeg", ".bmp", ".webp")),
    ("L", lambda: _gradient("L"), (".png", ".jpg", ".bmp", ".webp")),
    ("P", lambda: _gradient("P"), (".png", ".bmp", ".webp")),
    ("P+transparency", _palette_with_transparency, (".png", ".webp")),
    ("RGBA", _rgba_half_transparent, (".png", ".webp")),
    ("LA", _la_half_transparent, (".png", ".webp")),
    ("I;16", lambda: _sixteen_bit(32768), (".png",)),
    ("CMYK", lambda: _gradient("CMYK"), (".jpg", ".jpeg")),
    ("1", lambda: _gradient("1"), (".png", ".bmp")),
]
FILE_CASES = [
    pytest.param(make, suffix, id=f"{label}{suffix}")
    for label, make, suffixes in CASES
    for suffix in suffixes
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("make", "suffix"), FILE_CASES)
def test_every_mode_and_format_loads_square_rgb(tmp_path: Path, make, suffix: str, size: int) -> None:
    path = tmp_path / f"img{suffix}"
    make().save(path)
    out = load_image(path, size)
    assert out.shape == (size, size, 3)
    assert out.dtype == np.uint8


@pytest.mark.parametrize("size", SIZES)
def test_mode_i_in_memory(size: int) -> None:
    # No format in IMAGE_SUFFIXES writes mode I, but Pillow can hand it to us from other decoders.
    out = to_rgb_square(_mode_i(32768), size)
    assert out.shape == (size, size, 3)
    assert np.all(np.abs(out.astype(int) - 128) <= 1)


@pytest.mark.parametrize("size", SIZES)
def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path, size: int) -> None:
    path = tmp_path / "gray16.png"
    _sixteen_bit(32768).save(path)
    assert Image.open(path).mode == "I;16"
    out = load_image(path, size)
    assert np.all(np.abs(out.astype(int) - 128) <= 1)
    _sixteen_bit(65535).save(path)
    assert np.all(load_image(path, size) == 255)


@pytest.mark.parametrize(
    ("make", "suffix"),
    [
        (_rgba_half_transparent, ".png"),
        (_rgba_half_transparent, ".webp"),
        (_palette_with_transparency, ".png"),
        (_la_half_transparent, ".png"),
    ],
)
def test_transparent_regions_become_white(tmp_path: Path, make, suffix: str) -> None:
    path = tmp_path / f"alpha{suffix}"
    make().save(path)
    out = load_image(path, 32)
    # Away from the seam the left half must be pure white, the right half the opaque colour.
    assert np.all(out[:, :12] >= 250)
    assert np.all(out[:, -12:, 1:] <= 5)


def test_fully_transparent_image_is_white(tmp_path: Path) -> None:
    path = tmp_path / "clear.png"
    Image.new("RGBA", (WIDTH, HEIGHT), (10, 200, 30, 0)).save(path)
    assert np.all(load_image(path, 16) == 255)


def test_sixteen_bit_transparent_value_becomes_white(tmp_path: Path) -> None:
    path = tmp_path / "trns16.png"
    arr = np.full((HEIGHT, WIDTH), 0, dtype=np.uint16)
    arr[:, WIDTH // 2 :] = 1000
    Image.fromarray(arr).save(path, transparency=0)
    out = load_image(path, 32)
    assert np.all(out[:, :12] == 255)
    assert np.all(out[:, -12:] <= 10)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp"])
def test_gray_level_is_preserved(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"gray{suffix}"
    Image.new("L", (WIDTH, HEIGHT), 100).save(path)
    out = load_image(path, 16)
    assert np.all(np.abs(out.astype(int) - 100) <= 2)


def test_cmyk_white_and_cyan(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    img = Image.new("CMYK", (WIDTH, HEIGHT), (0, 0, 0, 0))
    img.paste((255, 0, 0, 0), (WIDTH // 2, 0, WIDTH, HEIGHT))
    img.save(path, quality=95)
    out = load_image(path, 32).astype(int)
    assert np.all(out[:, :12] >= 245)
    cyan = out[:, -12:].reshape(-1, 3).mean(axis=0)
    assert cyan[0] < 20 and cyan[1] > 230 and cyan[2] > 230


def test_centre_crop_keeps_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    third = 30
    arr = np.zeros((third, 3 * third, 3), dtype=np.uint8)
    arr[:, :third] = (255, 0, 0)
    arr[:, third : 2 * third] = (0, 255, 0)
    arr[:, 2 * third :] = (0, 0, 255)
    Image.fromarray(arr).save(path)
    for size in SIZES:
        mean = load_image(path, size).reshape(-1, 3).mean(axis=0)
        assert mean[1] > 200 and mean[0] < 30 and mean[2] < 30


def test_tall_image_crops_vertically() -> None:
    arr = np.zeros((90, 30, 3), dtype=np.uint8)
    arr[:30] = (255, 0, 0)
    arr[30:60] = (0, 255, 0)
    arr[60:] = (0, 0, 255)
    mean = to_rgb_square(Image.fromarray(arr), 16).reshape(-1, 3).mean(axis=0)
    assert mean[1] > 200 and mean[0] < 30 and mean[2] < 30


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored landscape with red left / blue right; orientation 6 means "rotate 90 degrees clockwise to view",
    # which puts red on top. Without the transpose, the top row would be half red, half blue.
    arr = np.zeros((HEIGHT, 2 * HEIGHT, 3), dtype=np.uint8)
    arr[:, :HEIGHT] = (255, 0, 0)
    arr[:, HEIGHT:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    out = load_image(path, 16).astype(int)
    assert np.all(out[0, :, 0] > 200) and np.all(out[0, :, 2] < 60)
    assert np.all(out[-1, :, 2] > 200) and np.all(out[-1, :, 0] < 60)


def _truncated_png(path: Path) -> None:
    """A valid PNG cut in half, as a download or copy interrupted midway leaves it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    # Noise does not compress, so half the bytes really is half the pixel data.
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    _truncated_png(path)
    with pytest.raises(UnreadableImageError, match="cut.png"):
        load_image(path, 16)


def test_unreadable_error_is_a_one_line_user_error(tmp_path: Path) -> None:
    path = tmp_path / "text.jpg"
    path.write_text("not an image\nsecond line\n")
    with pytest.raises(UserError) as info:
        load_image(path, 16)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_bad_size_is_a_programming_error(tmp_path: Path) -> None:
    path = tmp_path / "ok.png"
    _gradient("RGB").save(path)
    with pytest.raises(ValueError):
        load_image(path, 0)


# --- folder data source ---


def _save(path: Path, mode: str = "RGB") -> None:
    """Write a small image at path, creating its folder; a mark drawn at a place of its own (from the path)
    makes every file a different picture (the folder source keeps byte-identical files once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = _gradient(mode)
    spot = sum(path.name.encode()) % (WIDTH - 2)
    image.paste(0, (spot, 1, spot + 2, 3))
    image.save(path)


@pytest.fixture
def mixed_tree(tmp_path: Path) -> Path:
    """Good images of several formats in nested folders, plus three broken files and some non-images."""
    root = tmp_path / "faces"
    _save(root / "a.png")
    _save(root / "nested" / "b.jpg")
    _save(root / "nested" / "deeper" / "c.webp")
    _save(root / "d.bmp")
    _save(root / "upper" / "E.JPG")
    _save(root / "f.jpeg", "L")
    _truncated_png(root / "broken" / "cut.png")
    (root / "broken" / "text.jpg").write_text("this is not a jpeg")
    (root / "broken" / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("ignored: no image suffix")
    return root


GOOD = ["a.png", "d.bmp", "f.jpeg", "nested/b.jpg", "nested/deeper/c.webp", "upper/E.JPG"]
BAD = ["broken/cut.png", "broken/empty.png", "broken/text.jpg"]


def test_find_images_is_recursive_sorted_and_case_insensitive(mixed_tree: Path) -> None:
    names = [p.relative_to(mixed_tree).as_posix() for p in find_images(mixed_tree)]
    assert names == sorted(GOOD + BAD)
    assert all(p.suffix.lower() in IMAGE_SUFFIXES for p in find_images(mixed_tree))


def test_load_folder_skips_broken_files_with_one_warning(mixed_tree: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixels, names = load_folder(mixed_tree, 16)
    assert pixels.shape == (len(GOOD), 16, 16, 3)
    assert pixels.dtype == np.uint8
    assert names == GOOD
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "3 unreadable" in message
    assert all(name in message for name in BAD)
    assert "\n" not in message


def test_load_folder_limit_keeps_the_first_readable(mixed_tree: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pixels, names = load_folder(mixed_tree, 8, limit=2)
        assert names == GOOD[:2]
        assert pixels.shape == (2, 8, 8, 3)
        # The broken files sort between good ones; the limit counts readable images only.
        _, names = load_folder(mixed_tree, 8, limit=len(GOOD))
        assert names == GOOD


def test_load_folder_rows_match_load_image(mixed_tree: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pixels, names = load_folder(mixed_tree, 16)
    for row, name in zip(pixels, names, strict=True):
        assert np.array_equal(row, load_image(mixed_tree / name, 16))


def test_missing_root_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder"
    with pytest.raises(UserError, match="does not exist") as info:
        load_folder(missing, 16)
    assert str(missing) in str(info.value)


def test_root_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    _save(path)
    with pytest.raises(UserError, match="not a folder"):
        load_folder(path, 16)


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no pictures here")
    with pytest.raises(UserError, match="no images") as info:
        load_folder(tmp_path, 16)
    assert str(tmp_path) in str(info.value)


def test_folder_with_only_broken_images(tmp_path: Path) -> None:
    _truncated_png(tmp_path / "cut.png")
    (tmp_path / "text.jpg").write_text("nope")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UserError, match="no readable image") as info:
            load_folder(tmp_path, 16)
    assert str(tmp_path) in str(info.value)
    assert "\n" not in str(info.value)
    assert caught == []


def test_bad_limit_is_a_user_error(mixed_tree: Path) -> None:
    with pytest.raises(UserError, match="data.num_images"):
        load_folder(mixed_tree, 16, limit=0)
