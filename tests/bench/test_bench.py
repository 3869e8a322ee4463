"""The comparison bench runs end to end at smoke size, so its harness cannot rot."""

import json

import pytest
from PIL import Image

from bench.compare import COLUMNS, ROWS, RUNS, equal_time_epochs, main


def test_compare_quick_writes_every_row_and_the_picture(tmp_path, capsys) -> None:
    picture = tmp_path / "compare.png"
    result = main(["--quick", "--cpu", "--steps", "8", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache"),
                   "--picture", str(picture)])
    assert list(result["runs"]) == list(RUNS)
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["settings"]["steps"] == 8 and saved["settings"]["size"] == 16
    # Equal steps: every run trained exactly 8 steps, the one with 200 more faces too.
    assert {name: run["steps"] for name, run in saved["runs"].items()} == dict.fromkeys(RUNS, 8)
    assert [r["row"] for r in saved["rows"]] == [label for label, _, _ in ROWS]
    assert saved["runs"]["mlp"]["likelihood"] == "fixed" and saved["runs"]["sharp"]["likelihood"] == "calibrated"
    assert saved["runs"]["conv-calibrated"]["priors"] == ["normal", "gmm"]
    # Without --latent each run keeps its recipe's latent: conf's 32, experiment=sharp_20k's 64 (--quick sets
    # the hidden size).
    assert saved["settings"]["latent"] is None
    assert {name: run["latent"] for name, run in saved["runs"].items()} == {**dict.fromkeys(RUNS, 32), "sharp-20k": 64}
    for run in saved["runs"].values():
        for key in ("bits_per_dim", "psnr", "ssim", "active_units", "seconds"):
            assert isinstance(run[key], (int, float)), key
    table = capsys.readouterr().out
    assert all(f"| {label} |" in table for label, _, _ in ROWS) and all(c in table for c in COLUMNS)
    # One labelled strip per row: 2 face rows of 16 px tiles (+2 px padding) under an 18 px label, 6 px apart.
    width, height = Image.open(picture).size
    assert height == len(ROWS) * (2 * 18 + 18 + 6) and width == 2 * 8 * 18 + 3 * 18 // 2


@pytest.mark.slow  # about a minute on 2 cores (three resconv and sharp trainings); make test-all runs it
def test_compare_arch_trains_resconv_at_equal_epochs_and_equal_time(tmp_path, capsys) -> None:
    result = main(["--quick", "--cpu", "--runs", "sharp", "--arch", "resconv", "--name", "arch",
                   "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache"),
                   "--picture", str(tmp_path / "arch.png")])
    runs = result["runs"]
    assert list(runs) == ["sharp", "resconv", "resconv-time"]
    assert runs["resconv"]["epochs"] == runs["sharp"]["epochs"] == 2
    expected = equal_time_epochs(2, runs["sharp"]["fit_seconds"], runs["resconv"]["fit_seconds"])
    assert runs["resconv-time"]["epochs"] == expected
    assert all(r["likelihood"] == "calibrated" for r in runs.values())
    saved = json.loads((tmp_path / "arch.json").read_text())
    assert [r["row"] for r in saved["rows"]] == ["sharp · calibrated + gmm", "resconv · sharp + gmm, equal epochs",
                                                  "resconv · sharp + gmm, equal time"]
    assert Image.open(tmp_path / "arch.png").size[1] == 3 * (2 * 18 + 18 + 6)
    assert "| resconv · sharp + gmm, equal time |" in capsys.readouterr().out


def test_equal_time_epochs_scales_by_the_measured_ratio() -> None:
    assert equal_time_epochs(30, 400.0, 1600.0) == 8  # 4x slower per epoch: a quarter of the epochs (7.5 rounds up)
    assert equal_time_epochs(30, 400.0, 400.0) == 30
    assert equal_time_epochs(2, 1.0, 100.0) == 1  # never zero epochs


def test_compare_rejects_unknown_runs_and_arch_without_sharp(capsys) -> None:
    with pytest.raises(SystemExit) as bad:
        main(["--quick", "--runs", "sharp,cnn"])
    assert bad.value.code == 2 and "--runs: choose from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--quick", "--runs", "mlp", "--arch", "resconv"])
    assert "include sharp" in capsys.readouterr().err


def test_every_compare_label_draws_in_the_pictures_font() -> None:
    # compare.png labels each strip with Pillow's default font, which lacks some glyphs (×, →, é): those
    # would print as empty boxes. A glyph the font lacks draws the same ink as a code point no font has.
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default()

    def ink(char: str) -> bytes:
        image = Image.new("L", (24, 24))
        ImageDraw.Draw(image).text((2, 2), char, font=font, fill=255)
        return image.tobytes()

    missing = ink("\uffff")
    assert ink("×") == missing  # the check itself can tell a missing glyph
    for label, _, _ in ROWS:
        lacking = sorted({c for c in label if c != " " and ink(c) == missing})
        assert not lacking, f"{label!r}: {lacking}"
