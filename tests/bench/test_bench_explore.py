"""The explorer's slider-latency benchmark runs end to end at smoke size, so its harness cannot rot."""

import json

import pytest

pytest.importorskip("gradio", reason="the explorer needs the app extra (gradio)")


def test_explore_latency_quick_times_every_slider(tmp_path) -> None:
    from bench.explore_latency import main

    result = main(["--quick", "--no-browser", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "explore_latency.json").read_text())
    assert saved["settings"]["size"] == 16 and saved["settings"]["repeats"] == 3
    assert [r["slider"] for r in result["results"]] == ["morph, decode", "morph, http", "steer, decode", "steer, http"]
    assert all(r["median ms"] > 0 for r in saved["results"])
    assert saved["targets"][0]["met"] in (True, False)  # a time is reported, never asserted
