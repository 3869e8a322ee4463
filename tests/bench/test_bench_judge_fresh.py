"""bench.judge_fresh: runs read on the same fresh faces, and the paired test between them."""

import json

import numpy as np
import pytest

from bench.judge_fresh import main, mcnemar
from lego_vae.training.run import train

JUDGE = ["eval.judge.num_train=200", "eval.judge.num_holdout=50", "eval.judge.epochs=1"]


def _run(make_cfg, tmp_path, name: str, *overrides: str):
    train(make_cfg(*JUDGE, "trainer.max_epochs=1", *overrides), tmp_path / name)
    return tmp_path / name


def test_mcnemar_counts_the_discordant_items_and_tests_them_exactly() -> None:
    first = np.array([True] * 10 + [False] * 5 + [True] * 7)
    second = np.array([False] * 10 + [False] * 5 + [True] * 7)
    assert mcnemar(first, second) == {"only_first": 10, "only_second": 0, "p": pytest.approx(2 * 0.5**10)}
    assert mcnemar(first, first) == {"only_first": 0, "only_second": 0, "p": 1.0}  # nothing to tell apart
    swapped = mcnemar(second, first)
    assert (swapped["only_first"], swapped["only_second"]) == (0, 10) and swapped["p"] == pytest.approx(2 * 0.5**10)


def test_two_runs_are_read_on_the_same_fresh_faces(make_cfg, tmp_path, capsys) -> None:
    a, b = _run(make_cfg, tmp_path, "a"), _run(make_cfg, tmp_path, "b", "seed=1")
    out = tmp_path / "results"
    info = main([str(a), str(b / "checkpoints" / "best.ckpt"), "--faces", "40", "--quick", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")])
    saved = json.loads((out / "judge_fresh.json").read_text())
    assert saved["settings"]["faces"] == 40 and saved["settings"]["seed"] == 777
    rows = saved["results"]
    assert [r["run"] for r in rows] == ["(the originals)", str(a / "checkpoints" / "best.ckpt"),
                                        str(b / "checkpoints" / "best.ckpt")]
    for row in rows:  # percentages, and the mean is the mean of the factors
        factors = [v for k, v in row.items() if k not in ("run", "mean")]
        assert len(factors) == 6 and all(0 <= v <= 100 for v in factors)
        assert row["mean"] == pytest.approx(sum(factors) / 6, abs=0.1)
    (pair,) = saved["pairs"]
    assert pair == info["pairs"][0] and 0 <= pair["only_first"] + pair["only_second"] <= 40 and 0 < pair["p"] <= 1
    # The two runs' mouth accuracies differ by exactly the discordant faces, over the faces read.
    mouth = [r["mouth"] for r in rows[1:]]
    assert mouth[0] - mouth[1] == pytest.approx(100 * (pair["only_first"] - pair["only_second"]) / 40, abs=0.1)
    assert "exact McNemar" in capsys.readouterr().out


def test_runs_of_two_image_sizes_are_refused_in_one_line(make_cfg, tmp_path, capsys) -> None:
    a, b = _run(make_cfg, tmp_path, "a"), _run(make_cfg, tmp_path, "b", "data.image_size=8")
    with pytest.raises(SystemExit) as exit_:
        main([str(a), str(b), "--faces", "4", "--quick", "--out", str(tmp_path / "results"),
              "--cache-dir", str(tmp_path / "cache")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: the runs are of different image sizes [8, 16]: compare runs of one size\n"
