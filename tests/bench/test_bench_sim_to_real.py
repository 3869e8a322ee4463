"""bench.sim_to_real: runs reconstruct a folder of real heads, scored per image by PSNR and SSIM."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from bench.sim_to_real import main
from lego_vae.data.folder import load_folder
from lego_vae.data.synthetic import render_faces
from lego_vae.runs import load_model
from lego_vae.training.run import train

PAD = 2  # save_grid's padding between and around the cells


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Three tiny runs (1 epoch): two of 16 px faces (seeds 0 and 1) and one of 8 px."""
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF, TINY

    tmp = tmp_path_factory.mktemp("sim2real")
    made = {}
    for name, overrides in {"a": [], "b": ["seed=1"], "small": ["data.image_size=8"]}.items():
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=[*TINY, "data.num_images=64", "trainer.max_epochs=1",
                                              f"data.cache_dir={tmp / 'cache'}", f"paths.output_root={tmp}", *overrides])
        train(cfg, tmp / name, announce=False)
        made[name] = tmp / name
    return made


@pytest.fixture
def real(tmp_path):
    """Five rendered heads as PNGs of 24 px, one of 40 px (resized to the run's size on reading), one in a subfolder."""
    folder = tmp_path / "real"
    (folder / "more").mkdir(parents=True)
    faces, _ = render_faces(4, size=24, seed=11)
    for i, face in enumerate(faces):
        Image.fromarray(face).save(folder / f"head{i}.png")
    big, _ = render_faces(1, size=40, seed=12)
    Image.fromarray(big[0]).save(folder / "more" / "big.png")
    return folder


def _grid_size(cells: int, rows: int, size: int) -> tuple[int, int]:
    """(width, height) of a save_grid picture of rows x cells images of size px."""
    return cells * (size + PAD) + PAD, rows * (size + PAD) + PAD


def test_one_run_scores_every_real_head(runs, real, tmp_path, capsys) -> None:
    out = tmp_path / "results"
    (real / "broken.png").write_bytes(b"not a picture")  # skipped, with one warning line
    main([str(runs["a"]), "--real", str(real), "--out", str(out), "--quick"])
    saved = json.loads((out / "sim_to_real.json").read_text())
    assert saved["folder"] == str(real) and saved["image_size"] == 16
    (key,) = saved["runs"]
    assert key == str(runs["a"] / "checkpoints" / "best.ckpt")
    result = saved["runs"][key]
    assert result["data"] == "synthetic"
    scores = result["images"]
    assert sorted(scores) == ["head0.png", "head1.png", "head2.png", "head3.png", "more/big.png"]
    for s in scores.values():  # a 1-epoch VAE: blurry, but far from noise and from perfect
        assert math.isfinite(s["psnr"]) and 5 < s["psnr"] < 60
        assert math.isfinite(s["ssim"]) and -1 <= s["ssim"] <= 1
    assert result["mean"]["psnr"] == pytest.approx(np.mean([s["psnr"] for s in scores.values()]))
    assert result["mean"]["ssim"] == pytest.approx(np.mean([s["ssim"] for s in scores.values()]))

    # PSNR recomputed by its formula, 10 log10(1 / MSE), on the resized 40 px head: the same reading, the same model.
    with pytest.warns(UserWarning, match="unreadable"):
        pixels, names = load_folder(real, 16)
    x = torch.from_numpy(pixels[names.index("more/big.png")]).permute(2, 0, 1)[None].float() / 255
    vae, _, _ = load_model(runs["a"])
    with torch.no_grad():
        mse = (vae.eval().reconstruct(x) - x).pow(2).mean().item()
    assert scores["more/big.png"]["psnr"] == pytest.approx(10 * math.log10(1 / mse), abs=1e-3)

    with Image.open(out / "sim_to_real.png") as picture:  # real heads above, reconstructions below
        assert picture.size == _grid_size(5, 2, 16)
    printed = capsys.readouterr()
    assert "mean psnr dB" in printed.out and "more/big.png" in printed.out
    (warning,) = printed.err.splitlines()
    assert warning.startswith("warning: skipped 1 unreadable image") and "broken.png" in warning


def test_two_runs_side_by_side_and_blocks_of_columns(runs, real, tmp_path) -> None:
    out = tmp_path / "results"
    # The first run given twice (folder and checkpoint) is read once.
    main([str(runs["a"]), str(runs["b"]), str(runs["a"] / "checkpoints" / "best.ckpt"), "--real", str(real),
          "--out", str(out), "--columns", "3", "--quick"])
    saved = json.loads((out / "sim_to_real.json").read_text())
    assert list(saved["runs"]) == [str(runs[n] / "checkpoints" / "best.ckpt") for n in ("a", "b")]
    a, b = (saved["runs"][k]["images"] for k in saved["runs"])
    assert a.keys() == b.keys() and a != b  # the same heads, two different models
    with Image.open(out / "sim_to_real.png") as picture:  # 2 blocks of 3 columns x (real, a, b)
        assert picture.size == _grid_size(3, 6, 16)
    assert [r["run"] for r in saved["results"]] == list(saved["runs"])


@pytest.mark.parametrize("case", ["empty", "missing"])
def test_an_empty_or_missing_folder_is_one_line(runs, tmp_path, capsys, case) -> None:
    folder = tmp_path / "real"
    if case == "empty":
        folder.mkdir()
        (folder / "notes.txt").write_text("no heads here")
    with pytest.raises(SystemExit) as exit_:
        main([str(runs["a"]), "--real", str(folder), "--out", str(tmp_path / "results"), "--quick"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: --real: ")
    assert ("does not exist" if case == "missing" else "no images") in err
    assert not (tmp_path / "results").exists()


def test_runs_of_two_image_sizes_are_refused_in_one_line(runs, real, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([str(runs["a"]), str(runs["small"]), "--real", str(real), "--out", str(tmp_path / "results"), "--quick"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: the runs are of different image sizes [8, 16]: compare runs of one size\n"
