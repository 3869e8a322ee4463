"""The typed schema: wrong types and unknown keys are one line at validation, for every command's config."""

import dataclasses
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from lego_vae.conf import CONF_DIR
from lego_vae.config import to_plain, validate, validate_tune, validated, with_defaults
from lego_vae.config.commands import EvaluateConfig, ExploreConfig, GenerateConfig
from lego_vae.errors import UserError
from tests.conftest import CONF, HANG_GUARD_S, ROOT


def compose_plain(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.latent=abc", "model.latent=abc: must be an integer >= 1"),
        ("model.compile=maybe", "model.compile=maybe: must be true or false"),
        ("optim.lr=fast", "optim.lr=fast: must be a number > 0"),
        ("+model.latnet=4", "model.latnet: not a key of this config"),
        ("trainer.threads=0", "trainer.threads=0: must be an integer >= 1 or null"),
        ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val=-1: must be a number > 0 or null"),
        ("eval.judge.seed=0", "eval.judge.seed=0: must differ from data.seed"),
    ],
)
def test_a_wrong_type_or_unknown_key_is_one_line(make_cfg, override: str, message: str) -> None:
    with pytest.raises(UserError) as err:
        validate(make_cfg(override))
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("study.workers=0", "study.workers=0: must be an integer >= 1 or auto"),
        ("space.hidden.low=4096", "space.hidden: low=4096 must be < high=2048"),
        ("sampler.kind=grid", "sampler.kind=grid: must be one of botorch, gp, tpe, random"),
        ("study.name=a/b", "study.name=a/b: must be a non-empty name without '/'"),
        ("study.n_trials=x", "study.n_trials=x: must be an integer >= 1"),
        ("trainer.max_steps=100", "trainer.max_steps=100: tune.py budgets a trial by study.epochs"),
    ],
)
def test_the_tune_schema_checks_its_sections(make_cfg, override: str, message: str) -> None:
    with pytest.raises(UserError) as err:
        validate_tune(make_cfg(override, config_name="tune"))
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    ("name", "schema", "overrides", "message"),
    [
        ("generate", GenerateConfig, [], "checkpoint: required"),
        ("generate", GenerateConfig, ["checkpoint=x", "steps=1"], "steps=1: must be an integer >= 2"),
        ("generate", GenerateConfig, ["checkpoint=x", "morph.mode=cubic"], "morph.mode=cubic: must be one of linear, slerp"),
        ("generate", GenerateConfig, ["checkpoint=x", "a=face.png"], "a, b: give both images"),
        ("explore", ExploreConfig, ["checkpoint=x", "server.port=0"], "server.port=0: must be an integer in [1, 65535]"),
        ("explore", ExploreConfig, ["checkpoint=x", "device=tpu"], "device=tpu: must be one of auto, cpu, cuda"),
        ("evaluate", EvaluateConfig, [], "checkpoint: required"),
        ("evaluate", EvaluateConfig, ["checkpoint=x", "eval.iwae_k=0"], "eval.iwae_k=0: must be an integer >= 1"),
    ],
)
def test_one_validator_serves_every_command(name: str, schema, overrides: list[str], message: str) -> None:
    with pytest.raises(UserError) as err:
        validated(compose_plain(name, *overrides), schema)
    assert str(err.value).startswith(message)


def test_every_command_config_is_valid_as_shipped() -> None:
    validated(compose_plain("generate", "checkpoint=x"), GenerateConfig)
    validated(compose_plain("explore", "checkpoint=x"), ExploreConfig)
    validated(compose_plain("evaluate", "checkpoint=x"), EvaluateConfig)
    # sharp_20k (train.py only: tune.py budgets by epochs) is sharp + 20,000 training faces at the seed's 13,200 steps.
    presets = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
    assert presets == ["demo", "quick", "search", "search_demo", "sharp", "sharp_20k"]
    configs = {p: validate(compose_plain("train", f"experiment={p}")) for p in ("sharp", "sharp_20k")}
    best, sharp = configs["sharp_20k"], configs["sharp"]
    assert (best.data.extra_train_faces, best.trainer.max_steps) == (20000, 13200)
    # The feature map, latent and hidden size measured best at this budget (docs/quality.md, "Underfit, not
    # overfit", "All 64 latent dimensions" and "A wider fully connected layer"); the rest is sharp's.
    assert best.model == dataclasses.replace(sharp.model, feature_size=8, latent=64, hidden=1024)
    assert (sharp.model.feature_size, sharp.model.latent, sharp.model.hidden) == (4, 32, 512)
    assert best.sample == sharp.sample
    # The learning rate measured best at this budget (docs/quality.md); the rest of the optimizer is sharp's.
    assert best.optim == dataclasses.replace(sharp.optim, lr=5e-4) and sharp.optim.lr == 1e-3
    assert best.trainer.gradient_clip_val is None and best.data.num_images == sharp.data.num_images


@pytest.mark.parametrize("preset", ["quick", "sharp", "demo", "sharp_20k", "search", "search_demo"])
def test_every_preset_serves_train_and_tune(preset: str) -> None:
    """A preset both commands take (README: `python train.py experiment=quick` and `python tune.py experiment=quick`)
    validates for both; the study's size reaches tune.py alone (train.py has no study keys to refuse)."""
    train = to_plain(validate(compose_plain("train", f"experiment={preset}")))
    assert "study" not in train
    if preset == "sharp_20k":  # train.py only: a budget in steps, which tune.py refuses in one line
        with pytest.raises(UserError, match=r"^trainer.max_steps=13200: tune.py budgets a trial by study.epochs"):
            validate_tune(compose_plain("tune", f"experiment={preset}"))
        return
    tune = validate_tune(compose_plain("tune", f"experiment={preset}"))
    # Every key train.py and tune.py share comes out the same from the preset.
    assert {k: v for k, v in to_plain(tune).items() if k in train} == train
    study = {"quick": ("quick", 10, 24), "demo": ("demo", 10, 24), "sharp": ("lego-vae", 100, 400),
             "search": ("search", 14, 400), "search_demo": ("search_demo", 10, 400)}[preset]
    assert (tune.study.name, tune.study.n_trials, tune.refit.epochs) == study
    if preset.startswith("search"):  # budgets in steps, the knobs of space/search.yaml, a GP with categorical inputs
        assert (tune.study.steps, tune.refit.steps) == ({"search": (4000, 13200), "search_demo": (300, 600)}[preset])
        assert set(tune.space) == {"hidden", "latent", "model", "optim", "data"} and tune.sampler.kind == "gp"


def test_an_old_checkpoints_config_gets_todays_defaults_for_keys_it_lacks(make_cfg) -> None:
    plain = to_plain(validate(make_cfg("model=mlp", "model.channels=8")))
    old = {**plain, "model": {k: v for k, v in plain["model"].items()
                              if k not in ("likelihood", "channels_last", "stage_convs", "feature_size")}}
    filled = with_defaults(old)
    assert filled.model.stage_convs == 0  # the net every run before the key trained
    assert filled.model.feature_size == 4  # likewise
    assert filled.model.likelihood == "fixed"  # the seed's loss: what runs trained with before the key existed
    assert filled.model.channels == 8 and filled.model.arch == "mlp"  # stored values win
    assert validate(filled).model.channels_last is True


def test_an_old_checkpoints_config_loses_keys_removed_since(make_cfg) -> None:
    """A key a later version removed (here two made-up ones) is dropped, so the old run still loads typed."""
    plain = to_plain(validate(make_cfg("model.latent=6")))
    old = {**plain, "removed_section": {"x": 1}, "model": {**plain["model"], "removed_key": 3}}
    filled = with_defaults(old)
    assert filled.model.latent == 6 and not hasattr(filled.model, "removed_key")
    assert to_plain(filled) == to_plain(with_defaults(plain))


@pytest.mark.parametrize(
    ("module", "args", "expected"),
    [
        ("lego_vae.evaluate", ["checkpoint=/no/such/run"], "error: checkpoint: no such file '/no/such/run'"),
        ("lego_vae.generate", ["checkpoint=x", "n=0"], "error: n=0: must be an integer >= 1"),
    ],
)
def test_commands_exit_2_with_one_line(tmp_path, module: str, args: list[str], expected: str) -> None:
    proc = subprocess.run([sys.executable, "-m", module, *args, f"hydra.run.dir={tmp_path}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[0].startswith(expected) and len(lines) == 1
