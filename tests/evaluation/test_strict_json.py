"""Every JSON file the project writes is strict JSON: a value that cannot be computed is null with a reason."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from lego_vae.evaluation.run import evaluate_run
from lego_vae.model.checkpoints import load_checkpoint
from lego_vae.training.run import train
from tests.conftest import ROOT


def strict_loads(text: str):
    """json.loads as JavaScript's JSON.parse and jq read: NaN, Infinity and -Infinity are errors."""
    def refuse(constant: str):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_metrics_json_of_a_model_with_an_infinite_kl_is_strict_json(make_cfg, tmp_path) -> None:
    # A finite model whose posterior log-variance is 1e4: exp(1e4) overflows, so its KL and every term of a
    # sampled z are not finite, while its reconstructions of posterior means are. metrics.json used to say Infinity.
    run = tmp_path / "run"
    train(make_cfg("trainer.max_epochs=1", "eval.judge.enabled=false", "eval.iwae_k=2"), run)
    ckpt = load_checkpoint(run / "checkpoints" / "best.ckpt")
    ckpt["state_dict"]["vae.logvar.bias"] = torch.full_like(ckpt["state_dict"]["vae.logvar.bias"], 1e4)
    wide = tmp_path / "wide" / "checkpoints" / "best.ckpt"
    wide.parent.mkdir(parents=True)
    torch.save(ckpt, wide)
    returned = evaluate_run(wide, out_dir=tmp_path / "eval")
    metrics = strict_loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics == returned
    assert metrics["test_kl"] is None and metrics["test_loss"] is None
    assert re.fullmatch(r"test_kl is inf: not finite, written as null", metrics["test_kl_reason"])
    assert metrics["test_loss_reason"].startswith("test_loss is ")
    assert math.isfinite(metrics["psnr"]) and math.isfinite(metrics["ssim"])  # of posterior means: still measured
    assert all(not k.endswith("_reason") or v is None or isinstance(v, str) for k, v in metrics.items())


def test_bench_results_with_a_nan_are_strict_json(tmp_path: Path) -> None:
    from bench import common

    results = [{"device": "cpu", "s_per_epoch": float("nan"), "trials": 3},
               {"device": "cpu", "s_per_epoch": 1.5, "trials": 3}]
    targets = [common.target("trials/min", "> 1", float("inf"), None)]
    info = common.report("strict", {"quick": True}, results, targets, tmp_path)
    saved = strict_loads((tmp_path / "strict.json").read_text())
    assert saved["results"][0]["s_per_epoch"] is None and saved["results"][1]["s_per_epoch"] == 1.5
    assert saved["results_reason"] == "results[0].s_per_epoch is nan: not finite, written as null"
    assert saved["targets"][0]["measured"] is None and "targets[0].measured is inf" in saved["targets_reason"]
    assert info["results"][0]["s_per_epoch"] != info["results"][0]["s_per_epoch"]  # the caller's data is untouched


def test_every_json_the_project_writes_refuses_nan() -> None:
    # Python's json writes NaN and Infinity unless told not to: each call in the package and the benches must
    # pass allow_nan=False, or go through lego_vae.strict_json (null and a reason instead).
    calls = []
    for path in [*(ROOT / "lego_vae").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]:
        if path.name == "strict_json.py":
            continue
        for match in re.finditer(r"json\.dumps?\(", path.read_text()):
            text = path.read_text()
            depth, end = 0, match.end() - 1
            for end in range(match.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            calls.append((path.relative_to(ROOT), text[match.start():end + 1]))
    assert calls  # the scan found the calls it checks
    lenient = [(str(p), call) for p, call in calls if "allow_nan=False" not in call]
    assert not lenient, lenient


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_finite_or_null_keeps_an_existing_reason(value: float) -> None:
    from lego_vae.strict_json import dumps, finite_or_null

    got = finite_or_null({"fd_judge": {"normal": value, "gmm": 2.0}, "fd_judge_reason": "gmm: few samples", "n": 3})
    assert got["fd_judge"] == {"normal": None, "gmm": 2.0} and got["n"] == 3
    assert got["fd_judge_reason"] == f"gmm: few samples; fd_judge.normal is {value}: not finite, written as null"
    assert strict_loads(dumps({"x": [value, 1]})) == {"x": [None, 1], "x_reason": f"x[0] is {value}: not finite, "
                                                                                  "written as null"}
