"""The study's plots on real in-memory Optuna studies, healthy and degenerate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial
from PIL import Image

from lego_vae.tuning.plots import trials_table, write_tuning_plots

optuna.logging.set_verbosity(optuna.logging.WARNING)

DISTRIBUTIONS = {"hidden": IntDistribution(128, 2048, log=True), "latent": IntDistribution(8, 64, log=True)}
SPACE = {"hidden": {"low": 128, "high": 2048, "log": True}, "latent": {"low": 8, "high": 64, "log": True}}
FOUR = ["history.png", "evolution.png", "space.png", "learning_curves.png"]
REFIT = [{"epoch": e, "train/loss": 60.0 - 2 * e, "val/loss": 58.0 - 1.5 * e} for e in range(10)] + [
    {"epoch": 10, "val/loss": 43.0}  # rows may miss a key
]


def loss(hidden: float, latent: float) -> float:
    """A smooth bowl with its bottom near hidden=512, latent=24."""
    return 40.0 + 3 * math.log2(hidden / 512) ** 2 + 5 * math.log2(latent / 24) ** 2


def surface(H: np.ndarray, L: np.ndarray) -> np.ndarray:
    return 40.0 + 3 * np.log2(H / 512) ** 2 + 5 * np.log2(L / 24) ** 2


def curve(final: float, epochs: int) -> dict[int, float]:
    return {e: final + 30.0 / (e + 1) for e in range(epochs)}


def add(study: optuna.Study, state: TrialState, hidden: int, latent: int, value: float | None = None,
        epochs: int = 10) -> None:
    final = loss(hidden, latent) if value is None else value
    study.add_trial(create_trial(
        state=state,
        params={"hidden": hidden, "latent": latent},
        distributions=DISTRIBUTIONS,
        value=final if state == TrialState.COMPLETE else None,
        intermediate_values={} if state == TrialState.FAIL else curve(final, epochs),
    ))


def mixed_study() -> optuna.Study:
    study = optuna.create_study(direction="minimize")
    complete = [(128, 8), (2048, 64), (512, 24), (256, 16), (1024, 32), (384, 12), (700, 48), (600, 20)]
    for h, lat in complete:
        add(study, TrialState.COMPLETE, h, lat)
    for h, lat in [(2000, 9), (150, 60), (1500, 10)]:
        add(study, TrialState.PRUNED, h, lat, epochs=3)
    add(study, TrialState.FAIL, 300, 30)
    return study


def assert_pngs(paths: list[Path], out: Path, names: list[str]) -> None:
    assert paths == [out / n for n in names]
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "PNG"
            assert im.width > 100 and im.height > 100


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_mixed_study_writes_all_five(tmp_path: Path) -> None:
    out = tmp_path / "plots" / "nested"
    paths = write_tuning_plots(mixed_study(), out, predict=surface, refit_history=REFIT, space=SPACE)
    assert_pngs(paths, out, [*FOUR, "refit.png"])
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)


def test_without_predict_and_refit_writes_four(tmp_path: Path) -> None:
    paths = write_tuning_plots(mixed_study(), tmp_path)
    assert_pngs(paths, tmp_path, FOUR)
    assert not (tmp_path / "refit.png").exists()


def test_posterior_contour_is_drawn_over_the_whole_space(tmp_path: Path) -> None:
    calls: list[tuple[np.ndarray, np.ndarray]] = []

    def recording(H: np.ndarray, L: np.ndarray) -> np.ndarray:
        calls.append((H.copy(), L.copy()))
        return surface(H, L)

    study = mixed_study()
    with_gp = write_tuning_plots(study, tmp_path / "gp", predict=recording, space=SPACE)[2]
    without = write_tuning_plots(study, tmp_path / "plain", space=SPACE)[2]

    assert len(calls) == 1
    H, L = calls[0]
    assert H.ndim == 2 and H.shape == L.shape and min(H.shape) >= 20
    assert H.min() == pytest.approx(128) and H.max() == pytest.approx(2048)
    assert L.min() == pytest.approx(8) and L.max() == pytest.approx(64)
    a, b = pixels(with_gp), pixels(without)
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_space_bounds_come_from_the_distributions_without_space(tmp_path: Path) -> None:
    seen: list[np.ndarray] = []

    def recording(H: np.ndarray, L: np.ndarray) -> np.ndarray:
        seen.extend([H, L])
        return surface(H, L)

    write_tuning_plots(mixed_study(), tmp_path, predict=recording)
    assert (seen[0].min(), seen[0].max()) == (pytest.approx(128), pytest.approx(2048))
    assert (seen[1].min(), seen[1].max()) == (pytest.approx(8), pytest.approx(64))


def test_empty_study_writes_nothing(tmp_path: Path) -> None:
    study = optuna.create_study(direction="minimize")
    add(study, TrialState.FAIL, 256, 16)  # failed trials alone are not "finished"
    out = tmp_path / "plots"
    assert write_tuning_plots(study, out, predict=surface, refit_history=REFIT) == []
    assert not out.exists()


def test_one_complete_trial(tmp_path: Path) -> None:
    study = optuna.create_study(direction="minimize")
    add(study, TrialState.COMPLETE, 512, 32)
    paths = write_tuning_plots(study, tmp_path, predict=surface, refit_history=REFIT, space=SPACE)
    assert_pngs(paths, tmp_path, [*FOUR, "refit.png"])


def test_all_pruned(tmp_path: Path) -> None:
    study = optuna.create_study(direction="minimize")
    for h, lat, e in [(256, 16, 2), (1024, 48, 4), (128, 8, 1)]:
        add(study, TrialState.PRUNED, h, lat, epochs=e)
    assert_pngs(write_tuning_plots(study, tmp_path, predict=surface), tmp_path, FOUR)


def test_all_values_equal_and_flat_surface(tmp_path: Path) -> None:
    study = optuna.create_study(direction="minimize")
    for h, lat in [(256, 16), (1024, 48), (512, 8)]:
        add(study, TrialState.COMPLETE, h, lat, value=42.0)
    paths = write_tuning_plots(study, tmp_path, predict=lambda H, L: np.full_like(H, 7.0))
    assert_pngs(paths, tmp_path, FOUR)


def trial_with(state: TrialState, value: float | None, intermediate: dict[int, float]) -> optuna.trial.FrozenTrial:
    return create_trial(state=state, params={"hidden": 900, "latent": 40}, distributions=DISTRIBUTIONS,
                        value=value, intermediate_values=intermediate)


def test_non_finite_values_are_skipped(tmp_path: Path) -> None:
    # Optuna refuses a NaN final value (such a trial is FAIL), but inf finals and NaN/inf epochs get through.
    study = mixed_study()
    study.add_trial(trial_with(TrialState.COMPLETE, float("inf"), {0: 70.0, 1: float("nan"), 2: float("inf")}))
    study.add_trial(trial_with(TrialState.PRUNED, None, {0: 80.0, 1: float("nan")}))
    half_nan = lambda H, L: np.where(H > 512, np.nan, surface(H, L))  # noqa: E731
    refit = [{"epoch": 0, "train/loss": float("nan"), "val/loss": 50.0}, {"epoch": 1, "val/loss": 45.0}]
    paths = write_tuning_plots(study, tmp_path, predict=half_nan, refit_history=refit, space=SPACE)
    assert_pngs(paths, tmp_path, [*FOUR, "refit.png"])


def test_only_non_finite_values(tmp_path: Path) -> None:
    study = optuna.create_study(direction="minimize")
    study.add_trial(trial_with(TrialState.COMPLETE, float("inf"), {0: float("nan")}))
    study.add_trial(trial_with(TrialState.PRUNED, None, {0: float("nan")}))
    paths = write_tuning_plots(study, tmp_path, predict=lambda H, L: np.full_like(H, np.nan),
                               refit_history=[{"epoch": 0}])
    assert_pngs(paths, tmp_path, FOUR)  # a refit history with no losses draws nothing


def test_trials_table() -> None:
    study = mixed_study()
    rows = trials_table(study)
    assert [r["number"] for r in rows] == list(range(12))
    assert [r["state"] for r in rows] == ["COMPLETE"] * 8 + ["PRUNED"] * 3 + ["FAIL"]
    assert set(rows[0]) == {"number", "hidden", "latent", "state", "value", "epochs", "steps", "seconds"}
    assert (rows[2]["hidden"], rows[2]["latent"]) == (512, 24)
    assert rows[2]["value"] == pytest.approx(loss(512, 24))
    assert rows[2]["epochs"] == 10
    pruned = rows[8]
    assert pruned["epochs"] == 3
    assert pruned["value"] == pytest.approx(curve(loss(2000, 9), 3)[2])  # last reported, not the first
    assert rows[11]["value"] is None and rows[11]["epochs"] == 0
    assert all(r["seconds"] is None or r["seconds"] >= 0 for r in rows)


def test_trials_table_non_finite_and_unfinished() -> None:
    study = optuna.create_study(direction="minimize")
    study.add_trial(trial_with(TrialState.PRUNED, None, {0: 80.0, 1: float("nan")}))
    study.add_trial(create_trial(state=TrialState.RUNNING, params={"hidden": 256}, distributions={"hidden": DISTRIBUTIONS["hidden"]},
                                 intermediate_values={0: 50.0}))
    pruned, running = trials_table(study)
    assert math.isnan(pruned["value"]) and pruned["epochs"] == 2
    assert running["state"] == "RUNNING" and running["value"] is None and running["latent"] is None
