"""Download, verification and safe extraction of the `lego_faces` zip, served from file:// URLs."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lego_vae.data.download import (
    download,
    fetch_lego_faces,
    git_blob_sha1,
    safe_extract,
)
from lego_vae.errors import UserError

# The published zip's layout: one top folder dataset/ of JPEGs named by Bricklink part.
FACE_NAMES = ("dataset/3626cpb1221.jpg", "dataset/3626bpx121.jpg", "dataset/3626cpb1591_0.jpg")
# The published set, as `git ls-tree 01c55ce dataset.zip` in a clone of that repository prints it.
PUBLISHED = ("iechevarria/lego-face-VAE", "01c55ce88d57d8bb5674f14a8afcc9121d9b4877",
             "153c85d6ffee22456ab015906e984038da412f08")
GITHUB_RAW = re.compile(r"https://github\.com/(?P<repo>[^/]+/[^/]+)/raw/(?P<commit>[0-9a-f]{40})/dataset\.zip")


def _jpeg_bytes(seed: int) -> bytes:
    """A small, distinct JPEG: a coloured head on white, like a product photo."""
    rng = np.random.default_rng(seed)
    pixels = np.full((24, 24, 3), 255, dtype=np.uint8)
    pixels[4:20, 5:19] = rng.integers(0, 256, 3, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _png_bytes(seed: int) -> bytes:
    """A small, distinct PNG."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _git_hash_object(path: Path) -> str:
    """The blob id according to git itself."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    return subprocess.run(
        [git, "hash-object", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()


def _files_under(folder: Path) -> list[Path]:
    """Every file (not folder) below folder."""
    return sorted(p for p in folder.rglob("*") if not p.is_dir()) if folder.exists() else []


@pytest.fixture
def dataset_zip(tmp_path: Path) -> Path:
    """A zip like the public one: a top folder dataset/ of JPEGs, plus the macOS junk Finder adds."""
    path = tmp_path / "served" / "dataset.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("dataset/", "")
        for seed, name in enumerate(FACE_NAMES):
            archive.writestr(name, _jpeg_bytes(seed))
        archive.writestr("__MACOSX/dataset/._3626cpb1221.jpg", b"\x00\x05\x16\x07junk")
        archive.writestr("dataset/._3626bpx121.jpg", b"\x00\x05\x16\x07junk")
    return path


def test_git_blob_sha1_matches_git(dataset_zip: Path, tmp_path: Path) -> None:
    assert git_blob_sha1(dataset_zip) == _git_hash_object(dataset_zip)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    # The well-known id of the empty blob.
    assert git_blob_sha1(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391" == _git_hash_object(empty)


def test_default_pin_is_the_published_repository_commit_and_blob(make_cfg) -> None:
    # The commit belongs to one repository and the blob to that commit's tree: a future edit of the URL,
    # the commit or the blob id must change all three together, here and in conf/data/lego_faces.yaml (their
    # one place in the package).
    data = make_cfg("data=lego_faces").data
    match = GITHUB_RAW.fullmatch(data.url)
    assert match is not None, data.url
    assert (match["repo"], match["commit"], data.blob) == PUBLISHED


def test_fetch_extracts_once_and_reuses_the_cache(dataset_zip: Path, tmp_path: Path) -> None:
    blob = git_blob_sha1(dataset_zip)
    cache = tmp_path / "cache"
    images = fetch_lego_faces(dataset_zip.as_uri(), blob, cache)
    assert images == cache / "lego_faces" / blob / "images"
    extracted = sorted(p.relative_to(images).as_posix() for p in _files_under(images) if p.name != ".complete")
    assert extracted == sorted(FACE_NAMES)  # the JPEGs only: no macOS junk
    assert (images / "dataset" / "3626cpb1221.jpg").read_bytes() == _jpeg_bytes(0)
    assert (cache / "lego_faces" / blob / "dataset.zip").is_file()
    # Nothing but the zip and images/ is left beside them: no .part file, no staging folder.
    assert sorted(p.name for p in (cache / "lego_faces" / blob).iterdir()) == ["dataset.zip", "images"]

    # A second run neither downloads (the served zip is gone) nor extracts again (the files are untouched).
    stamps = {p: p.stat().st_mtime_ns for p in _files_under(images)}
    dataset_zip.unlink()
    assert fetch_lego_faces(dataset_zip.as_uri(), blob, cache) == images
    assert {p: p.stat().st_mtime_ns for p in _files_under(images)} == stamps


def test_verified_zip_is_reused_when_images_are_incomplete(dataset_zip: Path, tmp_path: Path) -> None:
    blob = git_blob_sha1(dataset_zip)
    cache = tmp_path / "cache"
    images = fetch_lego_faces(dataset_zip.as_uri(), blob, cache)
    # Simulate a run killed mid-extraction in an older layout: images/ without its marker.
    shutil.rmtree(images)
    (images / "dataset").mkdir(parents=True)
    (images / "dataset" / "stale.jpg").write_bytes(b"half")
    dataset_zip.unlink()
    assert fetch_lego_faces(dataset_zip.as_uri(), blob, cache) == images
    assert not (images / "dataset" / "stale.jpg").exists()
    assert len(list(images.rglob("*.jpg"))) == len(FACE_NAMES)


def test_corrupt_cached_zip_is_downloaded_again(dataset_zip: Path, tmp_path: Path) -> None:
    blob = git_blob_sha1(dataset_zip)
    cached = tmp_path / "cache" / "lego_faces" / blob / "dataset.zip"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(dataset_zip.read_bytes()[:100])
    images = fetch_lego_faces(dataset_zip.as_uri(), blob, tmp_path / "cache")
    assert git_blob_sha1(cached) == blob
    assert len(list(images.rglob("*.jpg"))) == len(FACE_NAMES)


def test_checksum_mismatch_leaves_nothing(dataset_zip: Path, tmp_path: Path) -> None:
    actual = git_blob_sha1(dataset_zip)
    wrong = "0" * 40
    cache = tmp_path / "cache"
    with pytest.raises(UserError) as info:
        fetch_lego_faces(dataset_zip.as_uri(), wrong, cache)
    message = str(info.value)
    assert wrong in message and actual in message
    assert dataset_zip.as_uri() in message
    assert "\n" not in message
    assert _files_under(cache) == []


def test_download_mismatch_deletes_partial_file(dataset_zip: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dl" / "dataset.zip"
    with pytest.raises(UserError, match="checksum mismatch"):
        download(dataset_zip.as_uri(), dest, "f" * 40)
    assert _files_under(dest.parent) == []


def test_download_ok(dataset_zip: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dl" / "dataset.zip"
    assert download(dataset_zip.as_uri(), dest, git_blob_sha1(dataset_zip)) == dest
    assert dest.read_bytes() == dataset_zip.read_bytes()
    assert _files_under(dest.parent) == [dest]


def test_missing_url_names_it_and_leaves_nothing(tmp_path: Path) -> None:
    url = (tmp_path / "nowhere" / "dataset.zip").as_uri()
    cache = tmp_path / "cache"
    with pytest.raises(UserError) as info:
        fetch_lego_faces(url, "1" * 40, cache)
    assert url in str(info.value)
    assert "\n" not in str(info.value)
    assert _files_under(cache) == []


def test_blob_id_must_be_hex(dataset_zip: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="40 hex digits"):
        fetch_lego_faces(dataset_zip.as_uri(), "../../etc", tmp_path / "cache")


def _unsafe_zip(path: Path, bad: zipfile.ZipInfo | str, payload: bytes = b"evil") -> Path:
    """A zip with good entries around one hostile entry, so 'check all before writing' is exercised."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("good/first.png", _png_bytes(0))
        archive.writestr(bad, payload)
        archive.writestr("good/last.png", _png_bytes(1))
    return path


def _symlink_entry(name: str) -> zipfile.ZipInfo:
    """A zip entry that unzip tools would create as a symbolic link."""
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16
    return info


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "nested_dotdot", "backslash", "drive"])
def test_unsafe_entries_are_refused_and_nothing_is_written(tmp_path: Path, kind: str) -> None:
    outer = tmp_path / "outer"
    target = outer / "target"
    target.mkdir(parents=True)
    escaped = outer / "evil.png"
    absolute = tmp_path / "absolute_evil.png"
    bad: zipfile.ZipInfo | str
    payload = b"evil"
    if kind == "dotdot":
        bad = "../evil.png"
    elif kind == "nested_dotdot":
        bad = "good/../../evil.png"
    elif kind == "backslash":
        bad = "..\\evil.png"
    elif kind == "drive":
        bad = "C:/evil.png"
    elif kind == "absolute":
        bad = zipfile.ZipInfo(str(absolute))  # ZipInfo keeps the leading '/', as a hand-made zip can
    else:
        bad = _symlink_entry("link.png")
        payload = str(escaped).encode()
    zip_path = _unsafe_zip(tmp_path / "unsafe.zip", bad, payload)
    names = zipfile.ZipFile(zip_path).namelist()
    assert (bad if isinstance(bad, str) else bad.filename) in names  # zipfile kept the hostile name

    with pytest.raises(UserError, match="unsafe") as info:
        safe_extract(zip_path, target)
    assert "\n" not in str(info.value)
    assert not escaped.exists()
    assert not absolute.exists()
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in outer.iterdir()) == ["target"]


def test_inner_dotdot_that_stays_inside_is_allowed(tmp_path: Path) -> None:
    zip_path = tmp_path / "ok.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("a/../b/face.png", _png_bytes(0))
    target = tmp_path / "target"
    written = safe_extract(zip_path, target)
    assert written == [target.resolve() / "b" / "face.png"]
    assert (target / "b" / "face.png").read_bytes() == _png_bytes(0)


def test_fetch_of_unsafe_zip_leaves_no_images_folder(tmp_path: Path) -> None:
    zip_path = _unsafe_zip(tmp_path / "dataset.zip", "../../evil.png")
    blob = git_blob_sha1(zip_path)
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="unsafe"):
        fetch_lego_faces(zip_path.as_uri(), blob, cache)
    base = cache / "lego_faces" / blob
    assert sorted(p.name for p in base.iterdir()) == ["dataset.zip"]
    assert not (cache / "lego_faces" / "evil.png").exists()


def test_not_a_zip_is_a_user_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.zip"
    bogus.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(UserError, match="cannot extract"):
        safe_extract(bogus, tmp_path / "target")
