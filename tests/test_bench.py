"""The comparison bench runs end to end at smoke size, so its harness cannot rot."""

import json

from PIL import Image

from bench.compare import COLUMNS, ROWS, RUNS, main


def test_compare_quick_writes_every_row_and_the_picture(tmp_path, capsys) -> None:
    picture = tmp_path / "compare.png"
    result = main(["--quick", "--cpu", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache"),
                   "--picture", str(picture)])
    assert list(result["runs"]) == list(RUNS)
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["settings"]["epochs"] == 2 and saved["settings"]["size"] == 16
    assert [r["row"] for r in saved["rows"]] == [label for label, _, _ in ROWS]
    assert saved["runs"]["mlp"]["likelihood"] == "fixed" and saved["runs"]["sharp"]["likelihood"] == "calibrated"
    assert saved["runs"]["conv-calibrated"]["priors"] == ["normal", "gmm"]
    for run in saved["runs"].values():
        for key in ("bits_per_dim", "psnr", "ssim", "active_units", "seconds"):
            assert isinstance(run[key], (int, float)), key
    table = capsys.readouterr().out
    assert all(f"| {label} |" in table for label, _, _ in ROWS) and all(c in table for c in COLUMNS)
    # One labelled strip per row: 2 face rows of 16 px tiles (+2 px padding) under an 18 px label, 6 px apart.
    width, height = Image.open(picture).size
    assert height == len(ROWS) * (2 * 18 + 18 + 6) and width == 2 * 8 * 18 + 3 * 18 // 2
