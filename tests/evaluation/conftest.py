"""The trained run the evaluation tests share: trained once per session, read by test_evaluate and test_generate."""

import pytest
from hydra import compose, initialize_config_dir

from lego_vae.pipeline import train_and_evaluate
from tests.conftest import CONF, TINY


@pytest.fixture(scope="session")
def gmm_run(tmp_path_factory):
    """A tiny calibrated run with a fitted mixture prior (every kind of metric is there): (run folder, its metrics).

    Tests read it and write elsewhere: none may change its files.
    """
    tmp = tmp_path_factory.mktemp("gmm")
    overrides = [*TINY, f"data.cache_dir={tmp / 'cache'}", f"paths.output_root={tmp}", "model.likelihood=calibrated",
                 "sample.prior=gmm", "sample.gmm_components=[1,2]", "eval.iwae_k=4"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    metrics = train_and_evaluate(cfg, tmp / "run")
    return tmp / "run", metrics
