"""The device check and the host-sync profile run end to end at smoke size (on the CPU here), so they cannot rot."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from bench import gpu, gpu_study, host_sync, worker_startup


@pytest.mark.slow  # the device check at smoke size on the CPU: four epoch rows and two studies, about 40 s on 2 cores; make test-all runs it
def test_gpu_check_quick(tmp_path: Path) -> None:
    # --no-time-box: every row and study runs to its end, so what is checked cannot depend on the machine's speed
    # (a busy machine used to stop the workers=2 study at its box, which was sized from the workers=1 study).
    info = gpu.main(["--quick", "--no-time-box", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache")])
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert saved["results"] == json.loads(json.dumps(info["results"], default=str))
    assert (tmp_path / "gpu.md").read_text().count("### ") == 3
    epochs = [r for r in saved["results"] if r["section"] == "epochs"]
    assert [(r["precision"], r["compile"], r["fused_adam"]) for r in epochs] == [
        ("32-true", False, True), ("bf16-mixed", False, True), ("32-true", False, False), ("bf16-mixed", False, False)]
    assert all(r["s_per_epoch"] > 0 for r in epochs)
    studies = {r["workers"]: r for r in saved["results"] if r["section"] == "study"}
    assert set(studies) == {1, 2}
    for row in studies.values():
        # Each study finished its trials, every worker with its share of the (one, under --quick) core.
        assert row["trials"] == row["planned"] == max(saved["settings"]["trials"], row["workers"]), row
        assert row["note"] == "" and row["torch_threads"] == 1 and math.isfinite(row["steady_trials_per_min"])
        # Start-up apart from the trials: the command's, each worker's own, and a trial's set-up.
        assert 0 < row["worker_startup_s"] <= row["worker_startup_max_s"] and 0 < row["startup_s"] < row["wall_s"]
        assert 0 < row["setup_s"] < row["mean_trial_s"]
    # workers=1 ran first, with no time box; its row is what sizes the box of workers=2 in a boxed run.
    order = [r["workers"] for r in saved["results"] if r["section"] == "study"]
    assert order == [1, 2] and studies[1]["box_s"] is None and studies[2]["box_s"] is None
    assert gpu_study.box_needed(argparse.Namespace(trials=saved["settings"]["trials"]), 2, studies[1]) > 0
    projection = [r for r in saved["results"] if r["section"] == "projection"]
    assert projection[0]["workers"] in (1, 2) and projection[0]["total_min"] > 0
    assert any(r["device"].startswith("cpu") for r in projection[1:])
    targets = {t["what"]: t for t in saved["targets"]}
    assert targets["trials/min, workers=2 / workers=1"]["met"] is None  # --quick sizes are no verdict
    assert math.isfinite(targets["the seed's full plan (100 x 50 + 400), best study.workers"]["measured"])


def test_study_settings_run_baseline_first_then_most_workers_first() -> None:
    assert gpu_study.study_order([1, 4, 8, 2]) == [1, 8, 4, 2]
    assert gpu_study.study_order([2, 4]) == [4, 2]
    args = argparse.Namespace(trials=3)
    baseline = {"startup_s": 10.0, "mean_trial_s": 12.0}
    # Each setting's box holds twice the baseline's start-up and its waves of trials, each N times as long.
    assert gpu_study.box_needed(args, 1, baseline) == 2 * 10 + 3 * 1 * 12 + 10
    assert gpu_study.box_needed(args, 2, baseline) == 2 * 10 + 2 * 2 * 12 + 10
    assert gpu_study.box_needed(args, 8, baseline) == 2 * 10 + 1 * 8 * 12 + 10  # 8 trials, one wave of 8
    assert gpu_study.trials_for(args, 8) == 8 and gpu_study.trials_for(args, 2) == 3
    assert gpu_study.box_needed(args, 4, None) is None


def test_auto_workers_read_what_the_gpu_bench_measured(tmp_path: Path) -> None:
    from lego_vae.tuning.workers import measured_workers

    assert measured_workers(tmp_path, "NVIDIA H200") is None  # not measured here
    rows = [{"section": "study", "workers": 1, "steady_trials_per_min": 5.6},
            {"section": "study", "workers": 8, "steady_trials_per_min": 30.0},
            {"section": "study", "workers": 4, "steady_trials_per_min": 21.0},
            {"section": "study", "workers": 2, "trials": None, "note": "skipped"}]
    gpu_study.record_best(tmp_path, "NVIDIA H200", rows, 20)
    gpu_study.record_best(tmp_path, "NVIDIA A100", rows[:1], 20)  # another GPU's entry is kept beside it
    found = measured_workers(tmp_path, "NVIDIA H200")
    assert found["workers"] == 8 and found["steady_trials_per_min"] == 30.0 and found["epochs_per_trial"] == 20
    assert measured_workers(tmp_path, "NVIDIA A100")["workers"] == 1
    (tmp_path / "workers.json").write_text("{not json")
    assert measured_workers(tmp_path, "NVIDIA H200") is None  # unreadable: the unmeasured default, no traceback


@pytest.mark.slow  # about 15 s on 2 cores; make test-all runs it
def test_worker_startup_quick_times_each_phase(tmp_path: Path) -> None:
    info = worker_startup.main(["--quick", "--out", str(tmp_path)])
    rows = {r["phase"]: r["median s"] for r in info["results"]}
    assert {"python start", "imports", "device", "open study", "launch to first trial", "first trial set-up",
            "second trial set-up", "first trial training"} <= set(rows)
    assert rows["imports"] > 0 and rows["open study"] > 0 and rows["device"] >= 0
    # The phases measured one by one add up to no more than the worker's own launch-to-first-trial record.
    parts = rows["python start"] + rows["imports"] + rows["device"] + rows["open study"]
    assert parts <= rows["launch to first trial"] + 0.05
    assert info["targets"][0]["measured"] == rows["launch to first trial"]
    assert [r["package"] for r in info["settings"]["imports"]][-1] == "all"
    assert (tmp_path / "worker_startup.json").is_file()


def test_host_sync_quick_finds_no_sync_per_step(tmp_path: Path) -> None:
    info = host_sync.main(["--quick", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache")])
    rows = {r["what"]: r for r in info["results"] if r["device"] == "cpu"}
    assert rows["read: other"]["steps"] >= 2
    assert rows["read: other"]["per step"] == 0 and rows["tensor from a Python number"]["per step"] == 0
    assert rows["read: other"]["rest of the epoch"] > 0  # the epoch-end logging reads its metrics: once per epoch
    assert rows["read: optimizer step counter (CPU)"]["per step"] > 0  # Adam's CPU step counters, counted apart
    assert info["targets"][0]["met"] is True
    assert json.loads((tmp_path / "host_sync.json").read_text())["name"] == "host_sync"


def test_host_sync_counts_a_per_step_sync() -> None:
    # The classifier on a profile of a loop that reads a value every step: it must be counted in the step.
    import torch

    with torch.profiler.profile() as prof:
        for _ in range(3):
            with torch.profiler.record_function(host_sync.STEP):
                x = torch.ones(4).sum()
                float(x)
                torch.tensor(1.0)
    counts = host_sync.classify(prof.events())
    assert counts["in_step"]["read: other"] == 3 and counts["in_step"]["tensor from a Python number"] == 3


@pytest.mark.slow  # two trainings and a judge, about 30 s on 2 cores; make test-all runs it
def test_quality_sweep_quick_trains_two_recipes_at_equal_time_and_judges_them(tmp_path: Path) -> None:
    from bench import quality_gpu

    info = quality_gpu.main(["--quick", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache")])
    saved = json.loads((tmp_path / "quality_gpu.json").read_text())
    assert [r["recipe"] for r in saved["results"]] == ["seed", "sharp"] == [r["recipe"] for r in info["results"]]
    rates = saved["settings"]["steps_per_second"]
    for r in saved["results"]:
        # Each recipe trained its own measured rate x the budget, and was judged.
        assert r["steps"] == max(1, round(rates[r["recipe"]] * saved["settings"]["budget_s"]))
        assert r["psnr"] > 0 and 0 <= r["mouth"] <= 1 and r["fd_judge"] is not None
    assert {r["recipe"]: r["prior"] for r in saved["results"]} == {"seed": "normal", "sharp": "gmm"}


def test_every_quality_sweep_recipe_is_a_valid_train_config_whose_budget_wins() -> None:
    # The GPU run is the first to train most recipes: a typo in one must fail here, not on the lent machine.
    from bench import common, quality_gpu

    for name, overrides in quality_gpu.RECIPES.items():
        plain = common.train_config(*overrides, "trainer.max_steps=7")  # as the worker appends its budget
        assert plain.trainer.max_steps == 7, name
    best = common.train_config(*quality_gpu.RECIPES["sharp_20k"])
    assert (best.model.latent, best.model.hidden, best.model.feature_size, best.optim.lr) == (
        64, 1024, 8, 5e-4)
