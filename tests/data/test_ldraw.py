"""data=ldraw: the shipped LDraw designs, their renderer, their labels, the data module's splits by design and
the attribute judge on them. Tiny: 16 px renders, a few dozen of them."""

from importlib import resources

import numpy as np
import pytest
import torch

from lego_vae.config import validate
from lego_vae.data.datamodule import TRAIN_ONLY, LegoFacesDataModule, design_of, split_of
from lego_vae.data.labelled import factors_of
from lego_vae.data.ldraw import render as ldraw
from lego_vae.data.ldraw.designs import Designs, load_designs
from lego_vae.data.ldraw.labels import design_labels, labels_of
from lego_vae.data.ldraw.render import HEAD_COLOURS, draw_params, render_heads, render_in_batches
from lego_vae.errors import UserError
from lego_vae.evaluation.judge import load_or_train_judge
from tests.conftest import data_module, judge_config


def _plain(texture_value: int, rgb: tuple[int, int, int] = (0, 0, 0)) -> Designs:
    """One made-up design printed all over with palette index texture_value (0: the head's colour)."""
    grid = load_designs().grid
    return Designs(names=np.array(["plain"]), description=np.array([""]), keywords=np.array([""]),
                         author=np.array([""]), textures=np.full((1, 112, 256), texture_value, np.uint8),
                         codes=np.array([16, 0]), rgb=np.array([[0, 0, 0], rgb], np.uint8), grid=grid)


# ---- the shipped designs -----------------------------------------------------------------------------------


def test_the_shipped_designs_are_complete_and_credited() -> None:
    designs = load_designs()
    n = len(designs)
    assert n > 300
    assert designs.textures.shape == (n, 112, 256) and designs.textures.dtype == np.uint8
    assert len(designs.description) == len(designs.keywords) == len(designs.author) == n
    assert len(set(designs.names.tolist())) == n
    assert designs.codes[0] == 16 and len(designs.codes) == len(designs.rgb)
    assert int(designs.textures.max()) < len(designs.rgb)  # every palette index has its colour
    assert all(texture.any() for texture in designs.textures)  # every design shows a print
    assert all(str(d).startswith("Minifig Head") for d in designs.description)
    folder = resources.files("lego_vae.data.ldraw")
    assert folder.joinpath("CAlicense4.txt").is_file() and folder.joinpath("CAreadme.txt").is_file()
    notice = folder.joinpath("NOTICE").read_text()
    assert "CC BY" in notice
    listed = next(line for line in notice.splitlines() if line.startswith(f"{n} parts: "))
    assert listed.removeprefix(f"{n} parts: ").rstrip(".").split(", ") == designs.names.tolist()
    for author in {a.strip() for authors in designs.author for a in str(authors).split(";") if a.strip()}:
        assert f"  {author}" in notice.splitlines()


# ---- the renderer ------------------------------------------------------------------------------------------


def test_a_render_depends_on_its_seed_and_index_only() -> None:
    designs = load_designs()
    which = [(7 * i) % len(designs) for i in range(70)]  # more than one internal batch of 64
    batch, params = render_heads(designs, which, size=16, seed=3)
    assert batch.shape == (70, 16, 16, 3) and batch.dtype == np.uint8
    assert params == [draw_params(i, 3) for i in range(70)]
    for i in (0, 1, 65):
        alone, (p,) = render_heads(designs, [which[i]], size=16, seed=3, start=i)
        assert np.array_equal(alone[0], batch[i]) and p == params[i]
    later, _ = render_heads(designs, which[60:], size=16, seed=3, start=60)
    assert np.array_equal(later, batch[60:])
    other, _ = render_heads(designs, which[:4], size=16, seed=4)
    assert all(not np.array_equal(a, b) for a, b in zip(other, batch[:4]))
    # The same pose with another design: the print shows.
    assert not np.array_equal(render_heads(designs, [which[1]], size=16, seed=3)[0][0], batch[0])
    large, _ = render_heads(designs, which[:2], size=32, seed=3)
    assert large.shape == (2, 32, 32, 3) and large.dtype == np.uint8


def test_a_head_on_a_light_backdrop_in_its_colour_and_print() -> None:
    n = 40
    bare, params = render_heads(_plain(0), [0] * n, size=16, seed=0)
    corners = bare[:, [0, 0, -1, -1], [0, -1, 0, -1]]  # (n, 4, 3)
    assert corners.min() > 200
    centre = bare[:, 8, 8].astype(int)
    # The head, not the backdrop: a light nougat head under a bright exposure is pale, as in product photos.
    assert (np.abs(centre - bare[:, 0, 0]).max(1) > 15).all()
    yellow = [i for i, p in enumerate(params) if p["head"] == "yellow"]
    assert len(yellow) >= 10 and len(yellow) < n  # and other head colours too
    assert (np.minimum(centre[yellow, 0], centre[yellow, 1]) > centre[yellow, 2] + 80).all()
    # A design printed all over in blue: the same renders, blue where the head shows.
    blue, _ = render_heads(_plain(1, (0, 0, 255)), [0] * n, size=16, seed=0)
    assert (blue[:, 8, 8, 2].astype(int) > blue[:, 8, 8, :2].max(1) + 80).all()
    assert np.array_equal(blue[:, 0, 0], bare[:, 0, 0])  # the backdrop is unchanged


def test_many_renders_in_processes_equal_one_batch(monkeypatch) -> None:
    monkeypatch.setattr(ldraw, "CHUNK", 7)  # 20 renders: 3 chunks, on every core this process may use
    designs = load_designs()
    which = [(11 * i) % len(designs) for i in range(20)]
    serial, _ = render_heads(designs, which, 16, seed=5)
    assert np.array_equal(render_in_batches(designs, which, 16, seed=5), serial)
    # Designs of one's own are rendered, not the shipped ones.
    mine = _plain(1, (0, 0, 255))
    pixels = render_in_batches(mine, [0] * 20, 16, seed=5)
    assert np.array_equal(pixels, render_heads(mine, [0] * 20, 16, seed=5)[0])


# ---- labels ------------------------------------------------------------------------------------------------


def _description(name: str) -> str:
    designs = load_designs()
    return str(designs.description[designs.names.tolist().index(name)])


@pytest.mark.parametrize(("name", "says", "mouth", "extras"), [
    ("3626bp01", "Standard Grin", "grin", []),
    ("3626bp08", "Red Lips", "lips", []),
    ("3626bp20", "Red Lips, Open Mouth", "teeth", []),  # an open mouth wins over lips
    ("3626bp4h", "Big Smile/Sad with Tear 2-sided", "smile", []),  # the front's expression, not the back's
    ("3626bph7", "Glasses and Lightning Bolt, Smile / Frown 2-Sided", "smile", ["glasses"]),
    ("3626bp04", "Standard Grin and Sunglasses", "grin", ["sunglasses"]),  # sunglasses are no glasses
    ("3626bp0e", "Glasses, Grey Eyebrows, Beard and Moustache", "other", ["beard", "moustache", "glasses"]),
    ("3626bp03", "Standard Grin and Pointed Moustache", "grin", ["moustache"]),
])
def test_labels_from_the_shipped_descriptions(name, says, mouth, extras) -> None:
    description = _description(name)
    assert says in description
    assert labels_of(description) == {"mouth": mouth, "extras": extras}


def test_keywords_add_extras_and_every_label_is_a_class_of_the_judge() -> None:
    found = labels_of("Minifig Head with Grin Pattern", "beard, Moustache")
    assert found == {"mouth": "grin", "extras": ["beard", "moustache"]}
    factors = factors_of("ldraw")
    assert set(factors) == {"mouth", "head", "extras"} and set(factors["head"]) == set(HEAD_COLOURS)
    designs = load_designs()
    found = [labels_of(str(d), str(k)) for d, k in zip(designs.description, designs.keywords)]
    assert {f["mouth"] for f in found} == set(factors["mouth"])  # every class is met, none outside
    assert {e for f in found for e in f["extras"]} == set(factors["extras"])


def test_a_renders_labels_are_its_designs_and_its_head_colour() -> None:
    designs = load_designs()
    names = [f"{designs.names[(5 * i) % len(designs)]}#{i:06d}" for i in range(30)]
    names.append(f"{TRAIN_ONLY}3626bp04#000031")
    labels = design_labels(names, seed=2)
    heads = [draw_params(i, 2)["head"] for i in range(32) if i != 30]
    assert [label["head"] for label in labels] == heads
    assert len(set(heads)) > 1
    for name, label in zip(names, labels):
        d = designs.names.tolist().index(design_of(name))
        assert {"mouth": label["mouth"], "extras": label["extras"]} == labels_of(str(designs.description[d]),
                                                                                 str(designs.keywords[d]))
    assert labels[-1]["extras"] == ["sunglasses"]


# ---- the data module ---------------------------------------------------------------------------------------


def _dm(tmp_path, **kw) -> LegoFacesDataModule:
    args = {"source": "ldraw", "image_size": 16, "num_images": 60, "extra_train_faces": 20, "batch_size": 16,
            "cache_dir": str(tmp_path / "cache"), **kw}
    return data_module(**args)


def _designs_of(dm: LegoFacesDataModule, split: str) -> set[str]:
    return {design_of(dm.names[i]) for i in dm.split_indices[split].tolist()}


def test_the_ldraw_source_splits_by_design_and_renders_extra_faces_of_training_designs(tmp_path) -> None:
    dm = _dm(tmp_path)
    dm.setup("fit")
    designs = load_designs()
    assert len(dm.images) == 80 and dm.images.shape[1:] == (3, 16, 16)
    train, val, test = (_designs_of(dm, s) for s in ("train", "val", "test"))
    assert val and test and not (train & val or train & test or val & test)
    extra = [i for i, name in enumerate(dm.names) if name.startswith(TRAIN_ONLY)]
    assert len(extra) == 20 and set(extra) <= set(dm.split_indices["train"].tolist())
    training_designs = set(designs.names[split_of(list(designs.names), 0, 0.1, 0.1) == 0].tolist())
    assert {design_of(dm.names[i]) for i in extra} <= training_designs
    # The cached pixels are the renderer's: render i of set data.seed shows the design its name says.
    which = [designs.names.tolist().index(design_of(name)) for name in dm.names]
    assert [int(name.split("#")[1]) for name in dm.names] == list(range(80))
    rendered, _ = render_heads(designs, which, 16, seed=0)
    assert torch.equal(dm.images, torch.from_numpy(rendered).permute(0, 3, 1, 2))
    labels = dm.split_labels("test")
    assert len(labels) == len(dm.split_indices["test"])
    assert labels == design_labels([dm.names[i] for i in dm.split_indices["test"].tolist()], 0)
    # Other settings, another cache: the extra faces' number, and the fractions (which designs train).
    assert _dm(tmp_path, extra_train_faces=10).cache_path != dm.cache_path
    other = _dm(tmp_path, val_fraction=0.3)
    assert other.cache_path != dm.cache_path
    other.setup("fit")
    other_extra = {design_of(name) for name in other.names if name.startswith(TRAIN_ONLY)}
    assert {design_of(dm.names[i]) for i in extra} != other_extra
    # The same settings find the cache: nothing is rendered again.
    mtime = dm.cache_path.stat().st_mtime_ns
    again = _dm(tmp_path)
    again.prepare_data()
    again.setup("fit")
    assert again.cache_path == dm.cache_path and dm.cache_path.stat().st_mtime_ns == mtime
    assert torch.equal(again.images, dm.images) and again.names == dm.names


@pytest.mark.parametrize(("source", "refused"), [("ldraw", False), ("synthetic", False), ("folder", True)])
def test_extra_train_faces_are_for_rendered_sources(make_cfg, source, refused) -> None:
    overrides = [f"data={source}", "data.extra_train_faces=5"]
    if source == "folder":
        overrides.append("data.root=/tmp")
    if refused:
        with pytest.raises(UserError) as error:
            validate(make_cfg(*overrides))
        message = str(error.value)
        assert message.startswith("data.extra_train_faces=5: only the synthetic and ldraw sources")
        assert "\n" not in message  # one line
    else:
        cfg = validate(make_cfg(*overrides))
        assert cfg.data.source == source and cfg.data.extra_train_faces == 5


# ---- the attribute judge -----------------------------------------------------------------------------------


def test_the_judge_of_ldraw_heads_reads_their_factors_and_is_cached_apart(tmp_path) -> None:
    settings = {"num_train": 80, "num_holdout": 40, "epochs": 1, "width": 4, "num_features": 8}
    judge, info = load_or_train_judge(16, tmp_path, judge_config(**settings), source="ldraw")
    factors = factors_of("ldraw")
    assert judge.factors == factors and not info["loaded"]
    assert set(info["ceiling"]) == set(info["chance"]) == {*factors, "mean"}
    again, info_again = load_or_train_judge(16, tmp_path, judge_config(**settings), source="ldraw")
    assert info_again["loaded"] and info_again["path"] == info["path"]
    assert again.factors == factors and info_again["ceiling"] == info["ceiling"]
    for name, value in judge.state_dict().items():
        assert torch.equal(value, again.state_dict()[name])
    synthetic, synthetic_info = load_or_train_judge(16, tmp_path, judge_config(**settings))
    assert synthetic_info["path"] != info["path"] and not synthetic_info["loaded"]
    assert synthetic.factors == factors_of("synthetic") != factors
    with pytest.raises(KeyError):
        load_or_train_judge(16, tmp_path, judge_config(**settings), source="folder")


@pytest.mark.parametrize("source", ["ldraw", "synthetic"])
def test_extra_train_faces_leave_the_validation_and_test_faces_unchanged(tmp_path, source) -> None:
    """A study searching data.extra_train_faces compares val/loss across its values: the same held-out faces."""
    dms = [_dm(tmp_path, source=source, extra_train_faces=extra) for extra in (0, 20)]
    for dm in dms:
        dm.prepare_data()
        dm.setup("fit")
    for split in ("val", "test"):
        assert len(dms[0].split_indices[split]) > 0
        assert torch.equal(dms[0].split_images(split), dms[1].split_images(split))
        assert dms[0].split_labels(split) == dms[1].split_labels(split)
    assert len(dms[1].split_indices["train"]) == len(dms[0].split_indices["train"]) + 20
