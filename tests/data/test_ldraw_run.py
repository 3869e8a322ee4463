"""A run on data=ldraw end to end: trained, judged by the LDraw heads' own judge, pictures of its classes."""

import json

import pytest
from hydra import compose, initialize_config_dir

from lego_vae.data.labelled import factors_of
from lego_vae.errors import UserError
from lego_vae.evaluation.generating import generate
from lego_vae.pipeline import train_and_evaluate
from tests.conftest import CONF, TINY


@pytest.fixture(scope="module")
def ldraw_run(tmp_path_factory):
    """One tiny run on the LDraw printed heads (16 px, 160 renders, a small judge)."""
    tmp = tmp_path_factory.mktemp("ldraw_run")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, "data=ldraw", f"data.cache_dir={tmp / 'cache'}",
                                          f"paths.output_root={tmp}"])
    train_and_evaluate(cfg, tmp / "run")
    return tmp / "run"


def test_metrics_read_the_ldraw_labels_with_the_ldraw_judge(ldraw_run) -> None:
    metrics = json.loads((ldraw_run / "metrics.json").read_text())
    factors = factors_of("ldraw")
    # Attribute accuracies over the LDraw heads' factors (mouth, head, extras), not the synthetic ones.
    for key in ("attr_acc_real", "attr_acc_recon", "judge_ceiling", "attr_chance"):
        assert set(metrics[key]) == {*factors, "mean"}, key
        assert all(0 <= v <= 1 for v in metrics[key].values()), key
    assert metrics["attr_reason"] is None
    assert set(metrics["attr_confusion_recon"]["mouth"]["classes"]) == set(factors["mouth"])
    assert "ldraw faces" in metrics["judge_note"]


def test_class_strip_of_an_ldraw_run_uses_its_classes(ldraw_run, tmp_path) -> None:
    cfg = {"checkpoint": str(ldraw_run), "n": 2, "temperature": 1.0, "seed": 0, "steps": 3, "pairs": 1, "a": None,
           "b": None, "prior": "normal", "morph": {"mode": "linear"}, "traversal": {"dims": 2, "steps": 3, "range": 3.0},
           "inputs": None, "classes": {"factor": "mouth", "values": [], "per_class": 1}}
    written = generate(cfg, tmp_path / "pictures")
    assert (tmp_path / "pictures" / "classes.png") in written
    # A class of the synthetic faces is not one of the LDraw heads': refused before any picture is written.
    with pytest.raises(UserError, match="lipstick not a class of mouth.*teeth"):
        generate({**cfg, "classes": {**cfg["classes"], "values": ["lipstick"]}}, tmp_path / "typo")
    assert not (tmp_path / "typo").exists()
