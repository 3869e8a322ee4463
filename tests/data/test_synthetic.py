"""Tests for the procedural Lego head renderer (lego_vae.data.synthetic)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lego_vae.data.synthetic import FACTORS, SKIN_TONES, preview, render_face, render_faces
from tests.conftest import HANG_GUARD_S

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def faces300() -> tuple[np.ndarray, list[dict]]:
    """300 faces at 32 px, shared by the variety and looks tests."""
    return render_faces(300, size=32, seed=0)


# ---- determinism ---------------------------------------------------------------------------------


def test_same_seed_index_size_gives_identical_face() -> None:
    a, la = render_face(7, size=32, seed=3)
    b, lb = render_face(7, size=32, seed=3)
    assert np.array_equal(a, b)
    assert la == lb


def test_batch_rendering_matches_single_faces() -> None:
    batch, labels = render_faces(5, size=32, seed=1, start=10)
    for i in range(5):
        single, label = render_face(10 + i, size=32, seed=1)
        assert np.array_equal(batch[i], single)
        assert labels[i] == label


def test_labels_do_not_depend_on_size() -> None:
    for i in range(10):
        assert render_face(i, size=16)[1] == render_face(i, size=48)[1]


def test_different_seed_gives_different_faces() -> None:
    a, _ = render_faces(4, size=32, seed=0)
    b, _ = render_faces(4, size=32, seed=1)
    assert all(not np.array_equal(a[i], b[i]) for i in range(4))


# ---- variety -------------------------------------------------------------------------------------


def test_different_indices_give_different_images(faces300) -> None:
    images, _ = faces300
    flat = images[:50].reshape(50, -1)
    assert len({row.tobytes() for row in flat}) == 50


def test_many_factor_combinations(faces300) -> None:
    _, labels = faces300
    combos = {(lab["skin"], lab["eyes"], lab["brows"], lab["mouth"]) for lab in labels}
    assert len(combos) > 100


@pytest.mark.parametrize("factor", ["skin", "eyes", "brows", "brow_color", "mouth"])
def test_every_value_of_a_factor_appears(faces300, factor: str) -> None:
    _, labels = faces300
    assert {lab[factor] for lab in labels} == set(FACTORS[factor])


def test_every_extra_appears_but_none_everywhere(faces300) -> None:
    _, labels = faces300
    counts = Counter(e for lab in labels for e in lab["extras"])
    for extra in FACTORS["extras"]:
        assert 0 < counts[extra] < len(labels), extra
    assert any(not lab["extras"] for lab in labels)


def test_yellow_is_the_most_frequent_skin(faces300) -> None:
    _, labels = faces300
    counts = Counter(lab["skin"] for lab in labels)
    assert counts.most_common(1)[0][0] == "yellow"


def test_label_values_are_known_and_pose_is_small(faces300) -> None:
    _, labels = faces300
    for lab in labels:
        for factor in ("skin", "eyes", "brows", "brow_color", "mouth"):
            assert lab[factor] in FACTORS[factor]
        assert set(lab["extras"]) <= set(FACTORS["extras"])
        assert abs(lab["pose"]["angle"]) <= 6.0 and abs(lab["pose"]["scale"] - 1) <= 0.08
        assert abs(lab["pose"]["dx"]) <= 0.05 and abs(lab["pose"]["dy"]) <= 0.05


# ---- shapes and types ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 32, 64])
def test_shapes_and_dtype(size: int) -> None:
    images, labels = render_faces(3, size=size, seed=0)
    assert images.shape == (3, size, size, 3)
    assert images.dtype == np.uint8
    assert len(labels) == 3
    one, _ = render_face(0, size=size)
    assert one.shape == (size, size, 3) and one.dtype == np.uint8


def test_labels_are_json_serialisable(faces300) -> None:
    _, labels = faces300
    assert json.loads(json.dumps(labels)) == labels


# ---- looks like a head ---------------------------------------------------------------------------


def test_centre_is_skin_and_corners_are_backdrop(faces300) -> None:
    images, labels = faces300
    images = images.astype(np.float32)
    s = images.shape[1]
    c = s // 8
    corners = np.concatenate(
        [images[:, :c, :c], images[:, :c, -c:], images[:, -c:, :c], images[:, -c:, -c:]], axis=1
    ).reshape(len(images), -1, 3)
    # A cheek-and-nose patch between the eyes and the mouth.
    centre = images[:, int(0.48 * s) : int(0.6 * s), int(0.36 * s) : int(0.64 * s)].reshape(len(images), -1, 3)
    assert corners.mean() > 180
    assert (corners.mean(axis=(1, 2)) > 180).mean() > 0.98
    skin = np.array([SKIN_TONES[lab["skin"]][1] for lab in labels], dtype=np.float32)
    centre_dist = np.linalg.norm(np.median(centre, axis=1) - skin, axis=1)
    corner_dist = np.linalg.norm(np.median(corners, axis=1) - skin, axis=1)
    assert (centre_dist < corner_dist).mean() > 0.9


def test_yellow_heads_are_yellow(faces300) -> None:
    images, labels = faces300
    s = images.shape[1]
    yellow = [i for i, lab in enumerate(labels) if lab["skin"] == "yellow"]
    centre = images[yellow, int(0.5 * s) : int(0.6 * s), int(0.4 * s) : int(0.6 * s)].astype(float)
    r, g, b = np.median(centre.reshape(len(yellow), -1, 3), axis=1).T
    assert ((r > 150) & (g > 120) & (b < 0.6 * r)).mean() > 0.9


# ---- preview and CLI -----------------------------------------------------------------------------


def test_preview_writes_square_png(tmp_path: Path) -> None:
    out = preview(tmp_path / "sub" / "faces.png", size=16, grid=3)
    assert out == tmp_path / "sub" / "faces.png"
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.size == (48, 48)


def test_cli_writes_preview(tmp_path: Path) -> None:
    out = tmp_path / "faces.png"
    result = subprocess.run(
        [sys.executable, "-m", "lego_vae.data.synthetic", "--preview", str(out), "--size", "32"],
        cwd=REPO, capture_output=True, text=True, timeout=HANG_GUARD_S,
    )
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    with Image.open(out) as im:
        assert im.size == (8 * 32, 8 * 32)
