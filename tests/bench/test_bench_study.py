"""The study benches (pruning savings, sample efficiency, projection, search efficiency) run end to end at smoke size.

No timing is asserted: the machines are shared. What is checked is that each bench writes its JSON
with the documented rows, and that the numbers that must be numbers are finite.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import projection, pruning_savings, sample_efficiency, search_efficiency

KEYS = {"name", "machine", "settings", "results", "targets"}
TARGET_KEYS = {"what", "target", "measured", "met"}


def finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def saved(out: Path, name: str) -> dict:
    """The bench's JSON, checked for the keys every bench writes."""
    info = json.loads((out / f"{name}.json").read_text())
    assert set(info) == KEYS and info["name"] == name
    assert info["results"] and info["targets"]
    assert all(set(t) == TARGET_KEYS for t in info["targets"])
    return info


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the three benches, as `make bench` uses one: projection reads pruning_savings.json."""
    return tmp_path_factory.mktemp("bench")


def quick(out: Path) -> list[str]:
    return ["--quick", "--out", str(out), "--cache-dir", str(out / "cache")]


def test_pruning_savings_quick(out: Path) -> None:
    result = pruning_savings.main(quick(out))
    info = saved(out, "pruning_savings")
    assert info["results"] == json.loads(json.dumps(result["results"]))
    rows = {r["pruner"]: r for r in info["results"]}
    assert set(rows) == {"median", "none"}
    for row in rows.values():
        assert row["trials"] == info["settings"]["n_trials"]
        assert row["epochs"] > 0 and finite(row["best_value"]) and finite(row["wall_seconds"])
    # Without a pruner every trial runs all its epochs; with one, never more.
    assert rows["none"]["pruned"] == 0 and rows["none"]["epochs"] == rows["none"]["epochs_if_all_ran"]
    assert rows["median"]["epochs"] <= rows["none"]["epochs"]
    targets = {t["what"]: t for t in info["targets"]}
    for what in ("epochs saved by the median pruner", "best value, pruned vs unpruned (relative)"):
        assert finite(targets[what]["measured"]) and isinstance(targets[what]["met"], bool)


def test_sample_efficiency_quick(out: Path) -> None:
    sample_efficiency.main(quick(out))
    info = saved(out, "sample_efficiency")
    s = info["settings"]
    rows = {(r["sampler"], r["trials"]): r for r in info["results"]}
    assert set(rows) == {(name, c) for name in sample_efficiency.SAMPLERS for c in s["checkpoints"]}
    assert all(finite(r["median_regret"]) and r["median_regret"] >= 0 for r in rows.values())
    assert s["grid_size"] == len(s["hidden"]) * len(s["latent"]) == 6 and s["seeds"] == 3
    assert (out / "sample_efficiency.png").stat().st_size > 0
    table = out / "sample_efficiency_table_quick.csv"
    assert table.exists() and not s["table_reused"]
    assert len(table.read_text().splitlines()) == 2 + s["grid_size"]  # settings line, header, one row per point
    target = info["targets"][0]
    assert finite(target["measured"]) and isinstance(target["met"], bool)
    # A second run with the same settings reads the table instead of training it again.
    again = sample_efficiency.main(quick(out))
    assert again["settings"]["table_reused"] and again["settings"]["table_min"] == s["table_min"]


def test_projection_quick(out: Path) -> None:
    if not (out / "pruning_savings.json").exists():
        pruning_savings.main(quick(out))  # run alone (-k): the projection reads its savings
    projection.main(quick(out))
    info = saved(out, "projection")
    measured = [r for r in info["results"] if r["row"] == "measured" and r["device"] == "cpu"]
    assert [(r["hidden"], r["latent"]) for r in measured] == projection.QUICK_POINTS
    assert all(finite(r["s_per_epoch"]) and r["s_per_epoch"] > 0 for r in measured)
    rows = {r["row"]: r for r in info["results"] if r["device"] == "cpu" and r["row"] != "measured"}
    total = rows["total, no pruning"]
    assert finite(total["hours"]) and total["hours_low"] <= total["hours"] <= total["hours_high"]
    assert total["epochs"] == 100 * 50 + 400  # the seed's plan, from conf/tune.yaml
    pruned = rows["total, with the measured pruning savings"]
    assert finite(pruned["hours"]) and pruned["hours"] <= total["hours"]
    gpu = [r for r in info["results"] if r["device"] == "gpu"]
    assert gpu  # measured rows on a GPU, or the row that says there was none
    if not info["machine"]["device"].startswith("cpu"):
        assert any(r["row"] == "measured" for r in gpu)
    else:
        assert gpu[0]["note"] == "not measured: no GPU on this machine"


@pytest.mark.slow  # two tune.py processes, about 40 s on 2 cores; make test-all runs it
def test_search_efficiency_quick(out: Path) -> None:
    """BO against random on the search preset's two objectives: one seed each at smoke size, through tune.py."""
    search_efficiency.main(quick(out))
    info = json.loads((out / "search_efficiency.json").read_text())
    assert KEYS <= set(info) and info["name"] == "search_efficiency"
    rows = info["results"]
    assert {r["sampler"] for r in rows} == set(search_efficiency.SAMPLERS) and all(r["trials"] == 3 for r in rows)
    for r in rows:  # judged quality is 1 - the lowest attribute error a study's trials reached
        assert 0.0 <= r["best judged quality"] <= 1.0 and finite(r["lowest val/loss"])
    assert info["medians"] == {s: next(r["best judged quality"] for r in rows if r["sampler"] == s)
                               for s in search_efficiency.SAMPLERS}
    target, halving = info["targets"]
    assert isinstance(target["met"], bool) and target["measured"] == info["medians"]["GP (GPSampler, log EHVI)"]
    # The halving replay: the preset's smallest rung (100 steps) lies past these 4-step trials, so none is pruned
    # and it spends every trial's full budget (3 x 4 steps a study).
    for r in info["halving_replay"]:
        assert r["completed"] == r["trials"] == 3 and r["steps spent"] == r["steps if all ran"] == 12
        assert r["best val/loss survives"] and r["best surviving val/loss"] == r["best val/loss"]
    assert halving["measured"] == 1.0 and halving["met"] is False
    # Spearman's rho per validation step over all 6 trials (steps 2 and 4 of 4); at the last step val/loss is the
    # final one, so its rank correlation with the final val/loss is exactly 1.
    steps = {r["step"]: r for r in info["spearman_by_step"]}
    assert set(steps) == {2, 4} and all(r["trials"] == 6 for r in steps.values())
    assert steps[4]["rho vs final val/loss"] == pytest.approx(1.0)
