"""The speed benches run end to end at smoke size, so their harness cannot rot; no timing is asserted."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import data_pipeline, sampler_overhead, trainer_overhead

KEYS = {"name", "machine", "settings", "results", "targets"}
TARGET_KEYS = {"what", "target", "measured", "met"}


def numbers(row: dict) -> list[float]:
    """The numeric cells of a row (bools are verdicts, not measurements)."""
    return [v for v in row.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def check_saved(out: Path, name: str, result: dict) -> dict:
    """The JSON file exists, has the documented shape, matches the returned dict, and every number is finite and > 0."""
    path = out / f"{name}.json"
    assert path.exists()
    saved = json.loads(path.read_text())
    assert set(saved) >= KEYS and saved["name"] == name
    assert saved["results"] == json.loads(json.dumps(result["results"], default=str))
    assert saved["machine"]["cores"] >= 1 and saved["machine"]["device"]
    for row in saved["results"]:
        assert numbers(row), row
        for value in numbers(row):
            assert math.isfinite(value) and value > 0, (row, value)
    assert saved["targets"]
    for t in saved["targets"]:
        assert set(t) >= TARGET_KEYS
        assert t["measured"] is not None and math.isfinite(t["measured"]) and t["measured"] > 0, t
        assert t["met"] in (True, False, None)
    return saved


def test_trainer_overhead_quick(tmp_path: Path) -> None:
    result = trainer_overhead.main(["--quick", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache")])
    saved = check_saved(tmp_path, "trainer_overhead", result)
    assert [r["arch"] for r in saved["results"]] == ["mlp", "conv"]
    for row in saved["results"]:
        assert row["bare/ours"] == pytest.approx(row["bare s/epoch"] / row["ours s/epoch"])
        assert isinstance(row["note"], str)
    assert [t["met"] for t in saved["targets"]] == [r["bare/ours"] >= trainer_overhead.TARGET for r in saved["results"]]
    assert saved["settings"]["quick"] is True and saved["settings"]["size"] == 16


def test_data_pipeline_quick(tmp_path: Path) -> None:
    result = data_pipeline.main(["--quick", "--out", str(tmp_path)])
    saved = check_saved(tmp_path, "data_pipeline", result)
    rows = [r["row"] for r in saved["results"]]
    assert rows == ["ours: first run (decode all files, write cache)", "ours: later run start-up (setup: load cache)",
                    "ours: epoch", "torchvision: epoch", "pool: 2,600 + 200 faces rendered once into the cache",
                    "train batch, seed's 2,600 faces", "train batch, + 200 extra faces",
                    "ldraw pool: 2,600 + 200 printed heads rendered once into the cache"]
    targets = {t["what"]: t for t in saved["targets"]}
    pool = targets["pool batch / seed-set batch (the pool's cost on a step)"]
    assert pool["measured"] > 0 and pool["target"] == "<= 1.1x"
    ldraw = targets["ldraw pool render / synthetic pool render (one-off)"]
    rendered = {r["row"].split(":")[0]: r["seconds"] for r in saved["results"]}
    assert ldraw["measured"] == pytest.approx(rendered["ldraw pool"] / rendered["pool"])
    epochs = {r["row"]: r for r in saved["results"]}
    # Both sides iterate the same train split.
    assert epochs["ours: epoch"]["images"] == epochs["torchvision: epoch"]["images"] < saved["settings"]["images"]
    assert not list(tmp_path.glob("cache*")) and not list(tmp_path.glob("jpegs"))  # temp data left nothing behind


def test_sampler_overhead_quick(tmp_path: Path) -> None:
    result = sampler_overhead.main(["--quick", "--out", str(tmp_path)])
    saved = check_saved(tmp_path, "sampler_overhead", result)
    assert [r["trials"] for r in saved["results"]] == [10, 25]
    for row in saved["results"]:
        assert {"botorch s", "gp s", "tpe s", "botorch/gp", "botorch/tpe", "botorch % of trial"} <= set(row)
    settings = saved["settings"]
    assert settings["samplers"] == ["botorch", "gp", "tpe"]
    assert (settings["num_restarts"], settings["raw_samples"], settings["repeats"]) == (2, 64, 1)
    assert settings["epoch_seconds"] > 0 and settings["epoch_seconds_source"]


def test_sampler_history_is_reproducible() -> None:
    space = {"hidden": sampler_overhead.IntDistribution(128, 2048, log=True),
             "latent": sampler_overhead.IntDistribution(8, 64, log=True)}
    a, b = sampler_overhead.history(space, 12, seed=3), sampler_overhead.history(space, 12, seed=3)
    assert [(t.params, t.value) for t in a] == [(t.params, t.value) for t in b]
    for t in a:
        assert 128 <= t.params["hidden"] <= 2048 and 8 <= t.params["latent"] <= 64 and math.isfinite(t.value)


def test_cpu_speed_quick_times_five_settings_against_fp32(tmp_path) -> None:
    from bench import cpu_speed
    from lego_vae.training.trainer import cpu_has_bf16, resolve_precision

    info = cpu_speed.main(["--quick", "--out", str(tmp_path)])
    rows = {r["setting"]: r for r in info["results"]}
    assert list(rows) == ["fp32, contiguous", "fp32, channels-last", "bf16, contiguous",
                          "auto, channels-last, torch's default Adam", "default (auto, channels-last, fused Adam)"]
    assert rows["fp32, contiguous"]["speed_vs_fp32"] == 1.0 and all(r["ms_per_step"] > 0 for r in rows.values())
    # The default is what a Trainer gets on this CPU: bf16 only where the CPU computes it natively.
    assert info["settings"]["default_precision"] == resolve_precision("auto", "cpu")
    assert (info["settings"]["default_precision"] == "bf16-mixed") == cpu_has_bf16()
    assert (tmp_path / "cpu_speed.json").is_file()
