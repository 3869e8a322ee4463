"""Training: the schedule, clipping, checkpoints, resume, TensorBoard, and python train.py end to end."""

import json
import re
import subprocess
import sys

import lightning.pytorch as L
import pytest
import torch

from lego_vae.config import validate
from lego_vae.data.datamodule import LegoFacesDataModule
from lego_vae.errors import NonFiniteLoss, UserError
from lego_vae.model.checkpoints import load_checkpoint
from lego_vae.training.callbacks import StopOnNonFiniteLoss
from lego_vae.training.lit import LitVAE, LRFactor
from lego_vae.training.run import train
from lego_vae.training.trainer import build_trainer
from tests.conftest import HANG_GUARD_S, ROOT, TINY


class RecordLR(L.Callback):
    """The learning rate each training epoch actually runs at."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])
        assert trainer.lr_scheduler_configs[0].scheduler.get_last_lr() == self.lrs[-1:]  # the scheduler agrees


@pytest.mark.parametrize("schedule", ["exponential", "cosine"])
def test_lr_factor_ends_at_final_lr(schedule: str) -> None:
    f = LRFactor(1e-3, 5e-7, epochs=400, schedule=schedule)
    assert f(0) == 1.0
    assert 1e-3 * f(399) == pytest.approx(5e-7, rel=1e-9)
    values = [f(e) for e in range(400)]
    assert all(a > b for a, b in zip(values, values[1:]))  # strictly decaying


@pytest.mark.parametrize("schedule", ["exponential", "cosine"])
def test_the_last_epoch_runs_at_final_lr(make_cfg, tmp_path, schedule: str) -> None:
    record = RecordLR()
    train(make_cfg("trainer.max_epochs=3", f"optim.schedule={schedule}"), tmp_path / "run",
          callbacks=[record])
    assert len(record.lrs) == 3
    assert record.lrs[0] == pytest.approx(1e-3)
    assert record.lrs[-1] == pytest.approx(5e-7, rel=1e-6)


class RecordGradients(L.Callback):
    """The largest |gradient| the optimizer stepped with, seen from the optimizer's own post-step hook.

    (Lightning calls step(closure): the gradients exist only once the closure inside step has run.)
    """

    def __init__(self) -> None:
        self.max_grad = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        def hook(optimizer, args, kwargs):
            grads = [p.grad.abs().max() for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            self.max_grad = max(self.max_grad, float(torch.stack(grads).max()))

        trainer.optimizers[0].register_step_post_hook(hook)


def _max_grad(make_cfg, tmp_path, clip: str, fused: str = "true") -> float:
    plain = validate(make_cfg("trainer.max_epochs=1", f"trainer.gradient_clip_val={clip}", f"optim.fused={fused}"))
    dm = LegoFacesDataModule.from_config(plain.data)
    record = RecordGradients()
    trainer = build_trainer(plain, tmp_path / f"clip{clip}{fused}", [record], checkpoints=False, train_batches=4)
    trainer.fit(LitVAE(plain), datamodule=dm)
    return record.max_grad


@pytest.mark.parametrize("fused", ["true", "false"])  # fused Adam: the module clips; unfused: Lightning does
def test_clipping_by_value_bounds_every_gradient(make_cfg, tmp_path, fused: str) -> None:
    unclipped = _max_grad(make_cfg, tmp_path, "null", fused)
    assert unclipped > 0.05  # the bound below would be vacuous otherwise
    assert _max_grad(make_cfg, tmp_path, "0.01", fused) <= 0.01 + 1e-7


class RecordLosses(L.Callback):
    """The training loss of every step."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


@pytest.mark.parametrize("algorithm", ["value", "norm"])
def test_fused_adam_trains_as_torchs_default_adam(make_cfg, tmp_path, algorithm: str) -> None:
    """optim.fused=true (one fused kernel; the module clips) against false (torch's Adam; Lightning clips): the same
    update, so the same training losses step after step, up to float rounding, for each clipping algorithm.

    Losses, not weights: a conv bias before a BatchNorm has a gradient that is zero up to rounding, and Adam
    turns its sign into a step of lr, so such biases differ between any two float orders; BatchNorm cancels them.
    """
    losses = {}
    for fused in ("true", "false"):
        plain = validate(make_cfg("trainer.max_epochs=2", "trainer.precision=32-true", f"optim.fused={fused}",
                                  "trainer.gradient_clip_val=0.05", f"trainer.gradient_clip_algorithm={algorithm}"))
        L.seed_everything(0, verbose=False)
        model, record = LitVAE(plain), RecordLosses()
        trainer = build_trainer(plain, tmp_path / f"{algorithm}-{fused}", [record], checkpoints=False, train_batches=4)
        trainer.fit(model, datamodule=LegoFacesDataModule.from_config(plain.data))
        assert trainer.optimizers[0].defaults["fused"] is (True if fused == "true" else None)
        assert model.own_clip is (fused == "true") and (trainer.gradient_clip_val is None) is (fused == "true")
        losses[fused] = torch.tensor(record.losses)
    assert len(losses["true"]) >= 8 and losses["false"][-1] < losses["false"][0]  # it trained
    same = float((losses["true"] - losses["false"]).abs().max())
    assert same <= 1e-5 * float(losses["false"].abs().max())
    # Not vacuous: without clipping the run follows another path, much further away than rounding.
    plain = validate(make_cfg("trainer.max_epochs=2", "trainer.precision=32-true", "trainer.gradient_clip_val=null"))
    L.seed_everything(0, verbose=False)
    record = RecordLosses()
    build_trainer(plain, tmp_path / f"{algorithm}-none", [record], checkpoints=False, train_batches=4).fit(
        LitVAE(plain), datamodule=LegoFacesDataModule.from_config(plain.data))
    unclipped = float((torch.tensor(record.losses) - losses["false"]).abs().max())
    assert unclipped > max(10 * same, 1e-4), (unclipped, same)


def test_adam_takes_its_betas_from_the_config(make_cfg, tmp_path) -> None:
    """optim.beta1 and optim.beta2 are the Adam that trains (torch's defaults in common.yaml), and they change it."""
    losses = {}
    for betas in ((0.9, 0.999), (0.5, 0.9)):
        plain = validate(make_cfg("trainer.max_epochs=2", "trainer.precision=32-true",
                                  f"optim.beta1={betas[0]}", f"optim.beta2={betas[1]}"))
        L.seed_everything(0, verbose=False)
        record = RecordLosses()
        trainer = build_trainer(plain, tmp_path / str(betas), [record], checkpoints=False, train_batches=4)
        trainer.fit(LitVAE(plain), datamodule=LegoFacesDataModule.from_config(plain.data))
        assert trainer.optimizers[0].param_groups[0]["betas"] == betas
        losses[betas] = torch.tensor(record.losses)
    assert validate(make_cfg()).optim.beta1 == 0.9 and validate(make_cfg()).optim.beta2 == 0.999
    # The first step is Adam's sign-like step either way; the steps after it differ.
    assert float((losses[(0.9, 0.999)] - losses[(0.5, 0.9)]).abs().max()) > 1e-3


class KillAfterFirstEpoch(L.Callback):
    """Dies as the second epoch starts: the first epoch's last.ckpt is on disk, as after a kill."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:
            raise RuntimeError("killed")


def test_resume_from_last_continues_exactly(make_cfg, tmp_path) -> None:
    cfg = make_cfg("trainer.max_epochs=2")
    full = train(cfg, tmp_path / "full")
    with pytest.raises(RuntimeError, match="killed"):
        train(cfg, tmp_path / "killed", callbacks=[KillAfterFirstEpoch()])
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert load_checkpoint(last)["epoch"] == 0
    resumed = train(make_cfg("trainer.max_epochs=2", f"ckpt_path={last}"), tmp_path / "resumed")
    assert resumed["epochs"] == full["epochs"] == 2
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.ckpt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert a["optimizer_states"][0]["state"][0]["step"] == b["optimizer_states"][0]["state"][0]["step"]
    assert resumed["val_loss"] == pytest.approx(full["val_loss"])


class RecordFused(L.Callback):
    """Whether the optimizer a run trains with is fused, as it starts (after a resume restored its state)."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.fused = trainer.optimizers[0].param_groups[0]["fused"]


@pytest.mark.parametrize(("before", "after"), [("true", "false"), ("false", "true")])
def test_a_resume_runs_fused_adam_as_optim_fused_says_now(make_cfg, tmp_path, before: str, after: str) -> None:
    """torch's Adam takes `fused` from the saved state: the resume sets it from today's optim.fused."""
    train(make_cfg("trainer.max_epochs=1", f"optim.fused={before}"), tmp_path / "first")
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert load_checkpoint(last)["optimizer_states"][0]["param_groups"][0]["fused"] is (True if before == "true" else None)
    record = RecordFused()
    resumed = train(make_cfg("trainer.max_epochs=2", f"optim.fused={after}", f"ckpt_path={last}"), tmp_path / "again",
                    callbacks=[record])
    assert resumed["epochs"] == 2 and record.fused is (True if after == "true" else None)


class WorseLastEpoch(L.Callback):
    """Makes the last epoch's val/loss the worst so far, as when a long run starts to overfit."""

    def on_validation_end(self, trainer, pl_module) -> None:  # runs before the checkpoint callbacks read it
        if trainer.current_epoch == trainer.max_epochs - 1:
            trainer.callback_metrics["val/loss"] = torch.tensor(1e12)


def test_last_ckpt_is_the_last_epoch_even_when_val_loss_got_worse(make_cfg, tmp_path) -> None:
    got = train(make_cfg("trainer.max_epochs=2"), tmp_path / "run", callbacks=[WorseLastEpoch()])
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
    best, last = load_checkpoint(checkpoints / "best.ckpt"), load_checkpoint(checkpoints / "last.ckpt")
    assert best["epoch"] == 0 and got["best_checkpoint"] == str(checkpoints / "best.ckpt")
    assert last["epoch"] == 1 and last["global_step"] == 2 * best["global_step"]  # resuming loses nothing
    assert not all(torch.equal(v, last["state_dict"][k]) for k, v in best["state_dict"].items())


def test_ckpt_path_last_finds_the_newest_matching_run(make_cfg, tmp_path) -> None:
    out = tmp_path / "outputs"
    cfg = make_cfg("trainer.max_epochs=1")
    train(cfg, out / "train" / "first")
    resumed = train(make_cfg("trainer.max_epochs=2", "ckpt_path=last"), out / "train" / "second")
    assert resumed["resumed_from"] == str((out / "train" / "first" / "checkpoints" / "last.ckpt").resolve())
    assert resumed["epochs"] == 2
    with pytest.raises(UserError, match="ckpt_path=last: no last.ckpt of a run with this data and model"):
        train(make_cfg("model.latent=5", "ckpt_path=last"), out / "train" / "third")


def test_ckpt_path_of_a_foreign_file_is_one_line(make_cfg, tmp_path) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="is not a lego-vae checkpoint"):
        train(make_cfg(f"ckpt_path={junk}"), tmp_path / "run")
    with pytest.raises(UserError, match="no such file"):
        train(make_cfg(f"ckpt_path={tmp_path / 'missing.ckpt'}"), tmp_path / "run")


def test_train_py_end_to_end(tmp_path) -> None:
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "train.py", *TINY, "trainer.max_epochs=3", f"hydra.run.dir={run}",
         f"data.cache_dir={tmp_path / 'cache'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ["checkpoints/best.ckpt", "checkpoints/last.ckpt", "samples.png", "reconstructions.png",
                 "morph.png", "morph.gif", "traversal.png", "metrics.json", "report.html", "config.yaml",
                 ".hydra/config.yaml"]:
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ["test_loss", "test_recon", "test_kl", "val_loss", "epochs", "seconds", "nll_nats", "bits_per_dim",
                "psnr", "ssim", "active_units"]:
        assert isinstance(metrics[key], (int, float)), key
    # The judge's metrics: attributes of the reconstructions per factor, distances of the N(0, I) samples.
    assert set(metrics["attr_acc_recon"]) == set(metrics["judge_ceiling"]) and "mean" in metrics["attr_acc_recon"]
    assert metrics["fd_judge"]["normal"] > 0 and 0 <= metrics["recall"]["normal"] <= 1
    assert metrics["likelihood"] == "fixed" and metrics["priors"] == ["normal"]
    # Offline with no Inception weights: no made-up FID, and a reason instead.
    assert metrics["fid"] is None and metrics["kid"] is None and "eval.inception_weights" in metrics["fid_reason"]
    # The report shows exactly the numbers of metrics.json, and embeds every picture it references.
    html = (run / "report.html").read_text()
    rows = [re.search(r'data-metric="([^"]+)"', r) and (re.search(r'data-metric="([^"]+)"', r)[1],
                                                       re.search(r'data-value="([^"]+)"', r)) for r in html.split("<tr")]
    shown = {name: value[1] for name, value in filter(None, rows) if value}
    from lego_vae.evaluation.report import flatten_metrics

    numeric = {k: v for k, v in flatten_metrics(metrics).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert "attr_acc_recon.mouth" in numeric and "fd_judge.normal" in numeric  # nested metrics: a row each
    assert shown.keys() == numeric.keys() and all(float(shown[k]) == float(v) for k, v in numeric.items())
    sources = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert len(sources) >= 6 and all(src.startswith("data:image/") for src in sources)
    assert "http://" not in html and "https://" not in html
    assert metrics["epochs"] == 3
    assert metrics["test_loss"] == pytest.approx(metrics["test_recon"] + metrics["test_kl"], rel=1e-4)
    # One plain line per epoch; validation loss went down.
    val = [float(v) for v in re.findall(r"^epoch .* val/loss (\d+\.\d+)", proc.stdout, re.M)]
    assert len(val) == 3 and val[-1] < val[0]
    # The last lines name what was written.
    assert proc.stdout.strip().splitlines()[-1].startswith("wrote ")
    assert f"wrote {run / 'samples.png'}" in proc.stdout
    # Checkpoints load without unpickling arbitrary objects, and carry the config as plain data.
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert type(ckpt["hyper_parameters"]["config"]) is dict
    assert ckpt["hyper_parameters"]["config"]["data"]["image_size"] == 16
    # Picture sizes follow the grid settings: 4x4 samples of 16 px with 2 px padding.
    from PIL import Image

    assert Image.open(run / "samples.png").size == (4 * 18 + 2, 4 * 18 + 2)
    # The GIF plays a -> b -> a: 2 * 5 - 2 frames of 120 ms (Pillow merges identical neighbours).
    gif = Image.open(run / "morph.gif")
    assert gif.size == (16, 16)  # native pixels: the report blows pictures up, the files stay honest
    durations = []
    for i in range(gif.n_frames):
        gif.seek(i)
        durations.append(gif.info["duration"])
    assert sum(durations) == (2 * 5 - 2) * 120


def test_tensorboard_gets_scalars_images_and_hparams(make_cfg, tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(make_cfg(), tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run" / "tb")).Reload()
    tags = events.Tags()
    for tag in ["train/loss", "train/recon", "train/kl", "val/loss", "val/recon", "val/kl", "lr"]:
        assert tag in tags["scalars"], tag
    assert {"samples", "reconstructions", "morph"} <= set(tags["images"])
    assert "hp_metric" not in tags["scalars"]
    plugin = events.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in plugin and b"val/loss" in plugin["_hparams_/experiment"]


# --- A loss that goes NaN or infinite stops the run, with one line; the last finite checkpoint is kept.


def test_train_py_stops_at_a_nan_loss_with_one_line(tmp_path) -> None:
    # lr 100: the loss is NaN within the first epoch. It used to run all epochs, exit 0 and write black pictures.
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "train.py", *TINY, "trainer.max_epochs=3", "optim.lr=100", "optim.final_lr=100",
         f"hydra.run.dir={run}", f"data.cache_dir={tmp_path / 'cache'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert re.match(r"error: train/loss became (nan|inf|-inf) at epoch 1, step \d+ \(batch \d+ of 4\); "
                    r"no checkpoint was written before it; try a lower optim.lr \(now 100", errors[0]), errors[0]
    assert not re.search(r"^epoch \d", proc.stdout, re.M)  # it stopped inside the first epoch
    for name in ["metrics.json", "samples.png", "morph.png", "report.html", "checkpoints/last.ckpt"]:
        assert not (run / name).exists(), name


def _finite(state_dict: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state_dict.values() if v.is_floating_point())


class StepsRun(L.Callback):
    """The optimizer steps a run started before it stopped (the last one counted from 1, as global_step does)."""

    def __init__(self) -> None:
        self.steps = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.steps = trainer.global_step + 1


@pytest.mark.parametrize("every_step", [None, False], ids=["the CPU's check after every step", "a GPU's per epoch"])
def test_a_run_that_goes_nan_keeps_its_last_finite_checkpoint(make_cfg, tmp_path, every_step) -> None:
    # A finite first epoch, then the same run folder resumed at lr 100: the loss goes NaN in epoch 2. The guard
    # reads its record after every step on the CPU, once per epoch on a GPU (read_every_step=False does that here).
    run = tmp_path / "run"
    train(make_cfg("trainer.max_epochs=1"), run)
    checkpoints = run / "checkpoints"
    before = {p.name: p.read_bytes() for p in checkpoints.iterdir()}
    assert set(before) == {"best.ckpt", "last.ckpt"}
    steps = StepsRun()
    with pytest.raises(NonFiniteLoss) as stopped:
        train(make_cfg("trainer.max_epochs=3", "optim.lr=100", "optim.final_lr=100",
                       f"ckpt_path={checkpoints / 'last.ckpt'}"), run,
              callbacks=[StopOnNonFiniteLoss(read_every_step=every_step), steps])
    message = str(stopped.value)
    match = re.match(r"train/loss became (nan|inf|-inf) at epoch 2, step (\d+) \(batch (\d+) of 4\); the last finite "
                     rf"checkpoint is {re.escape(str(checkpoints / 'last.ckpt'))} \(epoch 1\)", message)
    assert match, message
    step, batch = int(match[2]), int(match[3])
    assert step == 4 + batch
    # Stopped at that step on the CPU; at the end of the epoch's training batches, before validation, on a GPU.
    assert steps.steps == (step if every_step is None else 8)
    # Neither checkpoint was overwritten with the weights the NaN left behind: both are still epoch 1's.
    assert {p.name: p.read_bytes() for p in checkpoints.iterdir()} == before
    for name in before:
        ckpt = load_checkpoint(checkpoints / name)
        assert ckpt["epoch"] == 0 and _finite(ckpt["state_dict"]), name


# --- Resuming with other training settings: the lr schedule is rebuilt for them from the checkpoint's epoch.


def test_extending_a_finished_run_rebuilds_the_lr_schedule(make_cfg, tmp_path, capsys) -> None:
    # The case: a 2-epoch cosine run, resumed from its last.ckpt with trainer.max_epochs=4. Epochs 3 and 4
    # ran at the final lr 5e-7 (the old run's schedule); now they run as in a run planned for 4 epochs.
    train(make_cfg("trainer.max_epochs=2", "optim.schedule=cosine"), tmp_path / "short")
    uninterrupted = RecordLR()
    train(make_cfg("trainer.max_epochs=4", "optim.schedule=cosine"), tmp_path / "full", callbacks=[uninterrupted])
    last = tmp_path / "short" / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    resumed = RecordLR()
    got = train(make_cfg("trainer.max_epochs=4", "optim.schedule=cosine", f"ckpt_path={last}"), tmp_path / "more",
                callbacks=[resumed])
    assert got["epochs"] == 4 and len(resumed.lrs) == 2
    assert resumed.lrs == pytest.approx(uninterrupted.lrs[2:], rel=1e-12)
    assert resumed.lrs[0] > 100 * 5e-7  # not the old run's final lr
    assert f"resume: {last} (2 epochs done) with changed settings: trainer.max_epochs 2 -> 4; the lr schedule is " \
           f"rebuilt for them: epoch 3 runs at lr {uninterrupted.lrs[2]:.3g}, epoch 4 at {uninterrupted.lrs[3]:.3g}" \
        in capsys.readouterr().out


def test_resuming_with_another_lr_follows_the_new_schedule(make_cfg, tmp_path) -> None:
    # A run killed after epoch 1 of 3, resumed through ckpt_path=last with optim.lr changed: epochs 2 and 3 run at
    # the new schedule's lr (the restored optimizer and scheduler held the old run's).
    out = tmp_path / "outputs"
    with pytest.raises(RuntimeError, match="killed"):
        train(make_cfg("trainer.max_epochs=3"), out / "train" / "killed", callbacks=[KillAfterFirstEpoch()])
    record = RecordLR()
    got = train(make_cfg("trainer.max_epochs=3", "optim.lr=5e-4", "ckpt_path=last"), out / "train" / "resumed",
                callbacks=[record])
    assert got["resumed_from"] == str((out / "train" / "killed" / "checkpoints" / "last.ckpt").resolve())
    schedule = LRFactor(5e-4, 5e-7, epochs=3)
    assert record.lrs == pytest.approx([5e-4 * schedule(1), 5e-4 * schedule(2)], rel=1e-12)
    assert record.lrs[-1] == pytest.approx(5e-7, rel=1e-9)


def test_resuming_with_another_batch_size_trains_every_image_once_per_epoch(make_cfg, tmp_path) -> None:
    # data.batch_size is a training setting, not part of the data: a resume may change it.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(make_cfg("trainer.max_epochs=1"), tmp_path / "first")
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    got = train(make_cfg("trainer.max_epochs=2", "data.batch_size=16", f"ckpt_path={last}"), tmp_path / "second")
    assert got["epochs"] == 2
    ckpt = load_checkpoint(tmp_path / "second" / "checkpoints" / "last.ckpt")
    assert ckpt["hyper_parameters"]["config"]["data"]["batch_size"] == 16
    assert ckpt["global_step"] == load_checkpoint(last)["global_step"] + 8  # 125 training faces in batches of 16
    images = EventAccumulator(str(tmp_path / "second" / "tb")).Reload().Scalars("train/images")
    assert [e.value for e in images] == [125.0]


def test_resuming_a_run_that_has_its_epochs_already_is_one_line(make_cfg, tmp_path) -> None:
    # It used to end in a KeyError traceback ('val/loss'): Lightning returned at once, having trained nothing.
    train(make_cfg("trainer.max_epochs=2"), tmp_path / "done")
    last = tmp_path / "done" / "checkpoints" / "last.ckpt"
    for epochs in (1, 2):
        with pytest.raises(UserError, match=rf"ckpt_path={re.escape(str(last))}: that run has trained 2 epochs "
                                            r"already; pass trainer.max_epochs=3 or more"):
            train(make_cfg(f"trainer.max_epochs={epochs}", f"ckpt_path={last}"), tmp_path / f"again{epochs}")


class RecordStepLR(L.Callback):
    """The lr of every optimizer step."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


@pytest.mark.parametrize("schedule", ["exponential", "cosine"])
def test_max_steps_trains_exactly_that_many_steps_with_the_schedule_per_step(make_cfg, tmp_path, schedule) -> None:
    # 128 training faces in batches of 32: 4 steps an epoch, so 10 steps end inside the third epoch.
    record = RecordStepLR()
    got = train(make_cfg("trainer.max_steps=10", "trainer.max_epochs=1", f"optim.schedule={schedule}"),
                tmp_path / "run", callbacks=[record])
    assert len(record.lrs) == 10 and got["epochs"] == 3
    assert record.lrs[0] == pytest.approx(1e-3) and record.lrs[-1] == pytest.approx(5e-7, rel=1e-6)
    assert all(a > b for a, b in zip(record.lrs, record.lrs[1:]))  # it decays at every step, not per epoch
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 10


def test_val_psnr_is_logged_every_epoch_as_the_test_metrics_define_it(make_cfg, tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lego_vae.evaluation.metrics import reconstruction_quality
    from lego_vae.runs import load_model

    train(make_cfg("trainer.max_epochs=2", "trainer.precision=32-true"), tmp_path / "run")
    logged = EventAccumulator(str(tmp_path / "run" / "tb")).Reload().Scalars("val/psnr")
    assert len(logged) == 2  # one value per epoch
    # The last epoch's value is the PSNR of the last weights' posterior-mean reconstructions of the val split.
    vae, config, _ = load_model(tmp_path / "run" / "checkpoints" / "last.ckpt")
    val = LegoFacesDataModule.ready(config.data).split_images("val")
    assert logged[-1].value == pytest.approx(reconstruction_quality(vae, val)["psnr"], abs=0.01)


def test_a_folder_with_another_runs_checkpoints_is_refused_and_kept(make_cfg, tmp_path) -> None:
    # Lightning would overwrite its last.ckpt and write best-v1.ckpt beside its best.ckpt, which the evaluation
    # would then read: the earlier run lost and the metrics of the wrong model. Resuming it in place is allowed.
    run = tmp_path / "run"
    train(make_cfg("trainer.max_epochs=1"), run)
    folder = run / "checkpoints"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert set(before) == {"best.ckpt", "last.ckpt"}
    with pytest.raises(UserError) as err:
        train(make_cfg("trainer.max_epochs=2"), run)
    assert str(err.value) == (f"{folder} already holds best.ckpt, last.ckpt of an earlier run: resume it with "
                              f"ckpt_path={folder / 'last.ckpt'}, or train into another folder (hydra.run.dir=...)")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing of it was touched
    got = train(make_cfg("trainer.max_epochs=2", f"ckpt_path={folder / 'last.ckpt'}"), run)
    assert got["epochs"] == 2 and sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert got["best_checkpoint"] == str(folder / "best.ckpt")
    assert load_checkpoint(folder / "last.ckpt")["epoch"] == 1


def test_a_run_out_of_memory_is_one_line(make_cfg, tmp_path, monkeypatch, capsys) -> None:
    # A train.py run (or the refit, evaluate, generate) that ran out of memory used to end in a traceback: the CPU
    # allocator raises a plain RuntimeError. Now: one line with what to lower, exit status 1, for each way torch runs out.
    from lego_vae.cli import run_app
    from lego_vae.model.vae import VAE
    from lego_vae.training.run import train

    def cpu_allocator(self, x):
        torch.empty(1 << 50, dtype=torch.uint8)  # a real allocation of 1 PiB: the CPU allocator refuses at once

    def cuda(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB.")

    for way, expected in ((cpu_allocator, "DefaultCPUAllocator: can't allocate memory"),
                          (cuda, "CUDA out of memory. Tried to allocate 20.00 GiB.")):
        monkeypatch.setattr(VAE, "forward", way)
        with pytest.raises(SystemExit) as caught:
            run_app(train, make_cfg("trainer.max_epochs=1"), tmp_path / way.__name__)
        assert caught.value.code == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: out of memory: ") and expected in err[0], err
        assert "lower data.batch_size" in err[0]
    monkeypatch.setattr(VAE, "forward", lambda self, x: (_ for _ in ()).throw(RuntimeError("a bug of ours")))
    with pytest.raises(RuntimeError, match="a bug of ours"):  # any other error is not hidden as out of memory
        run_app(train, make_cfg("trainer.max_epochs=1"), tmp_path / "bug")
