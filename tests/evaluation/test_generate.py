"""python -m lego_vae.generate: pictures from a checkpoint, and clear errors for a wrong one."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from lego_vae.errors import UserError
from lego_vae.evaluation.generating import generate
from lego_vae.model.vae import interpolate_latents
from lego_vae.runs import load_model
from lego_vae.training.run import train
from tests.conftest import HANG_GUARD_S, ROOT
from tests.data.helpers import black_png


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One tiny trained run shared by the tests of this file."""
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF, TINY

    tmp = tmp_path_factory.mktemp("gen")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, f"data.cache_dir={tmp / 'cache'}", f"paths.output_root={tmp}"])
    train(cfg, tmp / "run")
    return tmp / "run"


def _cfg(checkpoint, **kw) -> dict:
    cfg = {"checkpoint": str(checkpoint), "n": 3, "temperature": 1.0, "seed": 0, "steps": 5, "pairs": 2, "a": None,
           "b": None, "prior": "normal", "morph": {"mode": "linear"}, "traversal": {"dims": 3, "steps": 4, "range": 3.0}, "inputs": None,
           "classes": {"factor": None, "values": [], "per_class": 2}}
    for key, value in kw.items():
        if "." in key:
            outer, inner = key.split(".")
            cfg[outer] = {**cfg[outer], inner: value}
        else:
            cfg[key] = value
    return cfg


def _size(path) -> tuple[int, int]:
    return Image.open(path).size


def test_generate_writes_every_picture(run_dir, tmp_path) -> None:
    faces = tmp_path / "mine"
    faces.mkdir()
    for i in range(5):
        Image.fromarray(np.full((30, 40, 3), 40 * i, np.uint8)).save(faces / f"{i}.png")
    out = tmp_path / "out"
    written = generate(_cfg(run_dir, inputs=str(faces)), out)
    names = [p.name for p in written]
    assert names == ["samples.png", "morph.png", "morph.gif", "traversal.png", "reconstructions.png"]
    cell = 16 + 2  # 16 px faces, 2 px padding
    assert _size(out / "samples.png") == (3 * cell + 2, 3 * cell + 2)
    assert _size(out / "morph.png") == (5 * cell + 2, 2 * cell + 2)  # 2 pairs x 5 steps
    assert _size(out / "traversal.png") == (4 * cell + 2, 3 * cell + 2)  # 3 dims x 4 steps
    assert _size(out / "reconstructions.png") == (3 * cell + 2, 4 * cell + 2)  # 5 inputs: 2 rows of pairs
    gif = Image.open(out / "morph.gif")
    assert gif.n_frames >= 2


def test_classes_strip_shows_test_faces_of_each_class_above_their_reconstructions(run_dir, tmp_path, capsys) -> None:
    from lego_vae.data.datamodule import LegoFacesDataModule
    from lego_vae.evaluation.generating import class_strip

    out = tmp_path / "out"
    written = generate(_cfg(run_dir, **{"classes.factor": "mouth", "classes.values": ["smile", "grin"],
                                        "classes.per_class": 2}), out)
    assert written[-1] == out / "classes.png"
    shown = capsys.readouterr().out.split("mouth: ")[1].splitlines()[0].split(", ")
    assert shown[0] == "smile" and set(shown) <= {"smile", "grin"} and len(shown) <= 4
    cell = 16 * 8 + 2  # 16 px faces upscaled to 128 px, 2 px padding
    assert _size(out / "classes.png") == (len(shown) * cell + 2, 2 * cell + 2)  # faces above reconstructions
    # The columns are test faces of those classes, in the test split's order, above their reconstructions.
    vae, config, _ = load_model(str(run_dir), "cpu")
    dm = LegoFacesDataModule.ready(config.data)
    strip, classes = class_strip(vae, dm, "mouth", ["grin", "smile"], 1)
    labels = dm.split_labels("test")
    firsts = [next(i for i, lab in enumerate(labels) if lab["mouth"] == c) for c in classes]
    faces = dm.split_images("test")[firsts].float() / 255
    assert classes == [c for c in ("grin", "smile") if any(lab["mouth"] == c for lab in labels)]
    assert torch.allclose(strip[: len(classes)], faces) and torch.allclose(strip[len(classes):], vae.reconstruct(faces))
    with pytest.raises(UserError, match="lipstik not a class of mouth"):
        class_strip(vae, dm, "mouth", ["lipstik"], 1)
    with pytest.raises(UserError, match="lipstik not a class of mouth"):  # refused before any picture is written
        generate(_cfg(run_dir, **{"classes.factor": "mouth", "classes.values": ["lipstik"]}), tmp_path / "typo")
    assert not (tmp_path / "typo").exists()
    with pytest.raises(UserError, match="classes.factor=extras: not a factor with one class per face"):
        class_strip(vae, dm, "extras", [], 1)


def test_checkpoint_may_be_a_run_folder_or_a_file(run_dir) -> None:
    vae_a, cfg_a, _ = load_model(run_dir)
    vae_b, _, _ = load_model(run_dir / "checkpoints" / "best.ckpt")
    assert cfg_a.data.image_size == 16
    for (k, a), (_, b) in zip(vae_a.state_dict().items(), vae_b.state_dict().items()):
        assert torch.equal(a, b), k


def test_morph_between_two_given_images(run_dir, tmp_path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.new("RGBA", (20, 20), (255, 200, 0, 255)).save(a)
    Image.new("RGB", (25, 20), (90, 50, 30)).save(b)
    generate(_cfg(run_dir, a=str(a), b=str(b), **{"morph.mode": "slerp"}), tmp_path / "out")
    assert _size(tmp_path / "out" / "morph.png") == (5 * 18 + 2, 18 + 2)


def test_inputs_in_a_linked_folder_are_read_and_a_huge_image_is_one_line(run_dir, tmp_path) -> None:
    faces, elsewhere = tmp_path / "mine", tmp_path / "elsewhere"
    for folder, n in ((faces, 2), (elsewhere, 3)):
        folder.mkdir()
        for i in range(n):
            Image.fromarray(np.full((30, 40, 3), 40 * i + 20 * n, np.uint8)).save(folder / f"{i}.png")
    (faces / "linked").symlink_to(elsewhere, target_is_directory=True)
    with pytest.warns(UserWarning, match="read 3 of 5 images .* through symbolic links"):
        generate(_cfg(run_dir, inputs=str(faces)), tmp_path / "out")
    assert _size(tmp_path / "out" / "reconstructions.png") == (3 * 18 + 2, 4 * 18 + 2)  # 5 inputs: 2 rows of pairs
    huge = black_png(tmp_path / "scan.png", 11000, 11000)  # a few kB; 121 Mpx to decode
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(UserError, match=r"'.*scan.png': 11000 x 11000 = 121,000,000 pixels, over the limit of "
                                            r"89,478,485 \(data.max_pixels\)$"):
            generate(_cfg(run_dir, a=str(huge), b=str(faces / "0.png")), tmp_path / "morph")


def test_slerp_keeps_the_ends_and_the_norm() -> None:
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    path = interpolate_latents(a, b, 5, "slerp")
    assert torch.allclose(path[0], a) and torch.allclose(path[-1], b, atol=1e-6)
    assert torch.allclose(path.norm(dim=1), torch.full((5,), 3.0), atol=1e-5)  # the linear path dips to 2.12
    assert interpolate_latents(a, b, 5, "linear")[2].norm() < 2.2


@pytest.mark.parametrize(
    ("checkpoint", "expected"),
    [("/no/such/model.ckpt", "error: checkpoint: no such file '/no/such/model.ckpt'"),
     # A relative path means the folder the command was typed in, and the line names it in full.
     ("README.md", f"error: checkpoint: '{ROOT / 'README.md'}' is not a lego-vae checkpoint")],
)
def test_a_missing_or_foreign_checkpoint_is_one_line(tmp_path, checkpoint: str, expected: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "lego_vae.generate", f"checkpoint={checkpoint}",
                           f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(expected)


def test_a_gmm_run_stores_its_prior_and_reports_both_priors(gmm_run) -> None:

    run, metrics = gmm_run
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["prior"]["kind"] == "gmm" and ckpt["prior"]["components"] in (1, 2)
    chosen = metrics["gmm_prior"]  # metrics.json says which mixture made the gmm samples, and why
    assert chosen["components"] == ckpt["prior"]["components"] and chosen["candidates"] == [1, 2]
    best = max(zip(chosen["candidate_scores"], chosen["candidates"]))
    assert best == (chosen["val_log_likelihood"], chosen["components"])
    vae, _, prior = load_model(run)
    assert prior is not None and prior.latent == vae.latent == 4
    assert metrics["likelihood"] == "calibrated" and metrics["priors"] == ["normal", "gmm"]
    assert 0 < metrics["decoder_sigma"] < 1 and metrics["decoder_sigma"] == pytest.approx(float(vae.log_sigma.exp()))
    assert "fid_reason_gmm" in metrics


def test_generate_samples_from_the_fitted_prior(gmm_run, run_dir, tmp_path) -> None:
    run, _ = gmm_run
    normal = generate(_cfg(run), tmp_path / "normal")[0]
    gmm = generate(_cfg(run, prior="gmm"), tmp_path / "gmm")[0]
    assert _size(gmm) == _size(normal) and Image.open(gmm).tobytes() != Image.open(normal).tobytes()
    with pytest.raises(UserError, match="holds no fitted prior; train with sample.prior=gmm"):
        generate(_cfg(run_dir, prior="gmm"), tmp_path / "none")
    with pytest.raises(UserError, match="prior=flow: must be one of normal, gmm"):
        generate(_cfg(run, prior="flow"), tmp_path / "bad")
