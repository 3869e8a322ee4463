"""The command schemas in Hydra's ConfigStore (lego_vae.config.store): composition checks keys and types, and each
error of composing is the command's one line and exit status 2, as every other mistake is."""

from __future__ import annotations

import pytest
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from lego_vae import evaluate, explore, generate, train, tune
from lego_vae.conf import CONF_DIR
from lego_vae.config.store import SCHEMAS
from tests.conftest import run_main

MAINS = {"train": train.main, "tune": tune.main, "evaluate": evaluate.main, "generate": generate.main,
         "explore": explore.main}
NOT_A_KEY = "not a key of this config (its keys are in lego_vae/conf/)"
CASES = [
    ("train", "model.log_sigma_min=low", "model.log_sigma_min=low: must be a number (log of the smallest decoder sigma)"),
    ("train", "model.latent=abc", "model.latent=abc: must be an integer >= 1"),
    ("train", "model.foo=1", f"model.foo: {NOT_A_KEY}"),
    ("train", "+model.foo=1", f"model.foo: {NOT_A_KEY}"),  # Hydra's + opens the node: the validator refuses it
    ("train", "study.n_trials=5", f"study: {NOT_A_KEY}"),  # a tune.py key given to train.py
    ("train", "model=resnet", "Could not find 'model/resnet' (the options: conv, mlp, resconv)"),
    ("train", "model.hidden=[1,2", "cannot read the override 'model.hidden=[1,2': no viable alternative at input '[1,2'"),
    ("train", "model.hidden", "cannot read the override 'model.hidden': missing EQUAL at '<EOF>'"),
    ("train", "~model.hidden", "model.hidden: a key of the schema cannot be deleted (~); set its value instead"),
    ("train", "trainer=5", "trainer is a section: set its keys (trainer.<key>=...), not a value"),
    ("generate", "morph=7", "morph is a section: set its keys (morph.<key>=...), not a value"),
    ("evaluate", "data=7", "data=7: data is a config group: give one of its options by name (the options: folder, "
                           "ldraw, lego_faces, synthetic)"),
    ("tune", "study.n_trials=x", "study.n_trials=x: must be an integer >= 1"),
    ("tune", "space=null", "space=null: space is a config group: give one of its options by name (the options: search, "
                           "seed)"),
    ("tune", "space=[1]", "space=[1]: space is a config group: give one of its options by name (the options: search, "
                          "seed)"),
    ("tune", "experiment=nope", "Could not find 'experiment/nope' (the options: demo, quick, search, search_demo, "
                                "sharp, sharp_20k)"),
    ("evaluate", "data.image_size=big", "data.image_size=big: must be an integer in [8, 1024]"),
    ("generate", "temperature=hot", "temperature=hot: must be a number > 0"),
    ("explore", "server.port=http", "server.port=http: must be an integer in [1, 65535]"),
]


def test_each_command_composes_into_its_registered_schema() -> None:
    for command, schema in SCHEMAS.items():
        node = ConfigStore.instance().load(f"{command}_schema.yaml").node
        assert OmegaConf.get_type(node) is schema
        defaults = OmegaConf.load(CONF_DIR / f"{command}.yaml").defaults
        assert defaults[0] == f"{command}_schema", command  # first: the YAML merges into it


@pytest.mark.parametrize(("command", "override", "message"), CASES)
def test_an_error_of_composing_is_one_line_and_exit_2(command, override, message, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    assert run_main(MAINS[command], [f"{command}.py", override, f"hydra.run.dir={tmp_path}/run"], monkeypatch) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.strip()] == [f"error: {message}"]
    if not override.startswith("+"):
        assert not (tmp_path / "run").exists()  # refused while composing, before Hydra made the run's folder


def test_a_user_asking_for_hydras_full_error_gets_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")  # anything but 1: Hydra's own short report and its exit status 1
    assert run_main(train.main, ["train.py", "model.latent=abc", f"hydra.run.dir={tmp_path}/run"], monkeypatch) == 1


@pytest.mark.parametrize(("command", "flags", "key"), [("train", [], "hydra.run.dir"), ("tune", [], "hydra.run.dir"),
                                                       ("train", ["-m"], "hydra.sweep.dir")])
def test_an_empty_output_folder_is_refused_before_anything_is_written(command, flags, key, tmp_path, monkeypatch,
                                                                       capsys):
    # Hydra would write the run (.hydra/, the log, checkpoints) into the folder the command was typed in.
    monkeypatch.chdir(tmp_path)
    assert run_main(MAINS[command], [f"{command}.py", *flags, f"{key}="], monkeypatch) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {key} is empty: name the output folder ({key}=outputs/run)"]
    assert list(tmp_path.iterdir()) == []
