"""The comparison bench runs end to end at smoke size, so its harness cannot rot."""

import json

from bench.compare import COLUMNS, main


def test_compare_quick_writes_one_row_per_model(tmp_path, capsys) -> None:
    result = main(["--quick", "--cpu", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache")])
    assert list(result["results"]) == ["mlp", "conv"]
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["settings"]["epochs"] == 2 and saved["settings"]["size"] == 16
    for arch in ("mlp", "conv"):
        for _, key, _ in COLUMNS:
            assert isinstance(saved["results"][arch][key], (int, float)), (arch, key)
    table = capsys.readouterr().out
    assert "| mlp |" in table and "| conv |" in table and "IWAE bits/dim" in table
