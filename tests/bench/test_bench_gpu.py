"""The device check and the host-sync profile run end to end at smoke size (on the CPU here), so they cannot rot."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench import gpu, host_sync


def test_gpu_check_quick(tmp_path: Path) -> None:
    info = gpu.main(["--quick", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache")])
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert saved["results"] == json.loads(json.dumps(info["results"], default=str))
    assert (tmp_path / "gpu.md").read_text().count("### ") == 3
    epochs = [r for r in saved["results"] if r["section"] == "epochs"]
    assert [(r["precision"], r["compile"]) for r in epochs] == [("32-true", False), ("bf16-mixed", False)]
    assert all(r["s_per_epoch"] > 0 for r in epochs)
    studies = {r["workers"]: r for r in saved["results"] if r["section"] == "study"}
    assert set(studies) == {1, 2}
    for row in studies.values():
        # Each study finished its trials, every worker with its share of the (one, under --quick) core.
        assert row["trials"] == saved["settings"]["trials"] and row["note"] == "", row
        assert row["torch_threads"] == 1 and math.isfinite(row["steady_trials_per_min"])
    projection = [r for r in saved["results"] if r["section"] == "projection"]
    assert projection[0]["workers"] in (1, 2) and projection[0]["total_min"] > 0
    assert any(r["device"].startswith("cpu") for r in projection[1:])
    targets = {t["what"]: t for t in saved["targets"]}
    assert targets["trials/min, workers=2 / workers=1"]["met"] is None  # --quick sizes are no verdict
    assert math.isfinite(targets["the seed's full plan (100 x 50 + 400), best study.workers"]["measured"])


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
