"""Config validation: a user's mistake is one line naming the key and what is allowed, and exit code 2."""

import subprocess
import sys

import pytest

from lego_vae.config import validate
from lego_vae.config.schema import ModelConfig, TrainConfig
from lego_vae.errors import UserError
from tests.conftest import HANG_GUARD_S, ROOT

BAD = [
    ("model.latent=0", "model.latent=0: must be an integer >= 1"),
    ("model.hidden=-5", "model.hidden=-5: must be an integer >= 1"),
    ("data.image_size=7", "data.image_size=7: must be an integer in [8, 1024]"),
    ("optim.final_lr=0.01", "optim.final_lr=0.01: must be <= optim.lr=0.001"),
    ("data.source=pictures", "data.source=pictures: must be one of synthetic, ldraw, folder, lego_faces"),
    ("model.arch=resnet", "model.arch=resnet: must be one of conv, mlp, resconv"),
    ("model.norm=layer", "model.norm=layer: must be one of batch, group"),
    ("model.stage_convs=-1", "model.stage_convs=-1: must be an integer >= 0"),
    ("model.feature_size=0", "model.feature_size=0: must be an integer >= 1"),
    ("model.likelihood=laplace", "model.likelihood=laplace: must be one of fixed, calibrated"),
    ("model.log_sigma_min=low", "model.log_sigma_min=low: must be a number"),
    ("model.sigma_momentum=0", "model.sigma_momentum=0: must be a number in (0, 1]"),
    ("model.blocks=-1", "model.blocks=-1: must be an integer >= 0"),
    ("sample.prior=flow", "sample.prior=flow: must be one of normal, gmm"),
    ("sample.gmm_components=[]", "sample.gmm_components=[]: must be a non-empty list of integers >= 1"),
    ("sample.gmm_components=[0,5]", "sample.gmm_components=[0, 5]: must be a non-empty list of integers >= 1"),
    ("sample.reg_covar=0", "sample.reg_covar=0: must be a number > 0"),
    ("optim.schedule=step", "optim.schedule=step: must be one of exponential, cosine"),
    ("optim.beta1=-0.1", "optim.beta1=-0.1: must be a number in [0, 1)"),
    ("optim.beta2=1", "optim.beta2=1: must be a number in [0, 1)"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0: must be an integer >= 1"),
    ("data.val_fraction=0.9", "data.val_fraction + data.test_fraction = 1: must be < 1"),
    ("trainer.precision=8-bit", "trainer.precision=8-bit: must be one of"),
]


@pytest.mark.parametrize(("override", "message"), BAD)
def test_validate_names_the_key_and_the_allowed_values(make_cfg, override: str, message: str) -> None:
    with pytest.raises(UserError) as err:
        validate(make_cfg(override))
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_the_default_config_is_valid(make_cfg) -> None:
    cfg = validate(make_cfg())
    assert cfg.model.arch == "conv" and cfg.data.source == "synthetic"  # TINY pins it
    assert isinstance(cfg, TrainConfig) and isinstance(cfg.model, ModelConfig)  # typed objects, not dicts


def test_the_seed_defaults_match_the_plan(make_cfg) -> None:
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train")
    assert cfg.trainer.max_epochs == 400 and cfg.data.batch_size == 64 and cfg.data.image_size == 64
    assert cfg.optim.lr == 1e-3 and cfg.optim.final_lr == 5e-7
    assert cfg.trainer.gradient_clip_val == 1.0 and cfg.trainer.gradient_clip_algorithm == "value"
    assert cfg.model.hidden == 512 and cfg.model.latent == 32
    assert cfg.data.source == "ldraw"  # the default data since issue 26: real printed heads


def test_folder_without_root_is_one_line(make_cfg) -> None:
    with pytest.raises(UserError, match="data.root"):
        validate(make_cfg("data=folder"))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model.latent=0"], "error: model.latent=0: must be an integer >= 1"),
        (["data.source=nope"], "error: data.source=nope: must be one of synthetic, ldraw, folder, lego_faces"),
        (["data=folder", "data.root=/no/such/folder"], "error: data.root: folder '/no/such/folder' does not exist"),
    ],
)
def test_train_py_exits_with_one_line(tmp_path, overrides: list[str], expected: str) -> None:
    proc = subprocess.run(
        [sys.executable, "train.py", *overrides, f"hydra.run.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/c"],
        cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [expected]


def test_a_resconv_net_without_a_stage_is_refused_in_one_line(make_cfg) -> None:
    with pytest.raises(UserError) as err:
        validate(make_cfg("model=resconv", "model.feature_size=16"))
    assert str(err.value) == ("model.feature_size=16: model.arch=resconv needs it below data.image_size=16 "
                              "(at least one stride-2 stage)")
    assert validate(make_cfg("model=resconv", "model.feature_size=8")).model.feature_size == 8
