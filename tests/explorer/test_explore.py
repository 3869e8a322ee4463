"""python -m lego_vae.explore: the face explorer served on a local port, driven by gradio_client and a real browser."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lego_vae.data.datamodule import LegoFacesDataModule
from lego_vae.data.images import load_image
from lego_vae.errors import UserError
from lego_vae.explorer.serve import stop_requests
from lego_vae.explorer.session import Explorer
from lego_vae.model.checkpoints import checkpoint_file, study_refit_run
from lego_vae.pictures import to_pil
from lego_vae.runs import load_model
from lego_vae.training.run import train
from tests.conftest import CONF, HANG_GUARD_S, ROOT, TINY, wait_until
from tests.data.helpers import black_png
from tests.explorer.helpers import chromium_path, free_port, morph_in_browser, running_explorer

gradio_client = pytest.importorskip("gradio_client", reason="the explorer's tests need the dev extra (gradio_client)")
pytest.importorskip("gradio", reason="the explorer needs the app extra (gradio)")

SIZE, CELL = 16, 16 + 2  # tiny faces; grids pad each by 2 px


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Two faces to upload, and the bad uploads the page must answer with a message."""
    tmp = tmp_path_factory.mktemp("uploads")
    a, b = tmp / "a.png", tmp / "b.jpg"
    Image.new("RGBA", (30, 20), (255, 200, 0, 255)).save(a)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (25, 20, 3), dtype=np.uint8)).save(b)
    (tmp / "notes.txt").write_text("not an image")
    (tmp / "empty.png").write_bytes(b"")
    whole = a.read_bytes()
    (tmp / "cut.png").write_bytes(whole[: len(whole) // 2])
    black_png(tmp / "huge.png", 20000, 20000)  # past Pillow's own decompression-bomb limit
    black_png(tmp / "big.png", 9000, 9000)  # under Pillow's limit, over the explorer's
    return {p.stem: p for p in tmp.iterdir()} | {"a": a, "b": b}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny checkpoint trained for these tests, with a fitted GMM prior; low beta and a constant lr, so that
    its faces differ."""
    from hydra import compose, initialize_config_dir

    tmp = tmp_path_factory.mktemp("explore")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, f"data.cache_dir={tmp / 'cache'}", f"paths.output_root={tmp}",
                                          "model.beta=0.01", "optim.lr=3e-3", "optim.final_lr=3e-3",
                                          "trainer.max_epochs=10"])
    train(cfg, tmp / "run")
    # The GMM prior as a sample.prior=gmm run stores it (train() fits it only with its artifacts).
    from lego_vae.data.datamodule import LegoFacesDataModule
    from lego_vae.model.prior import fit_prior, store_prior

    vae, config, _ = load_model(tmp / "run")
    dm = LegoFacesDataModule.from_config(config.data)
    dm.prepare_data()
    dm.setup("fit")
    store_prior(tmp / "run" / "checkpoints" / "best.ckpt",
                fit_prior(vae, dm.split_images("train"), dm.split_images("val"), [1, 2], 1e-4))
    return tmp / "run"


@pytest.fixture(scope="module")
def app_url(run_dir, tmp_path_factory):
    with running_explorer(run_dir, tmp_path_factory.mktemp("app")) as url:
        yield url


@pytest.fixture
def client(app_url):
    return gradio_client.Client(app_url, verbose=False)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def reconstruction(vae, image: torch.Tensor) -> np.ndarray:
    """What the page should show for a face: its reconstruction as 8-bit pixels."""
    return np.asarray(to_pil(vae.reconstruct(image[None])[0]), dtype=np.int16)


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to one 8-bit level (batched and single decodes may round differently)."""
    return a.shape == b.shape and int(np.abs(a - b).max()) <= 1


def test_generate_draws_a_grid_per_seed(client) -> None:
    first, note = client.predict(1, 1.0, "normal", api_name="/generate")
    again, _ = client.predict(1, 1.0, "normal", api_name="/generate")
    other, _ = client.predict(2, 1.0, "normal", api_name="/generate")
    assert Image.open(first).size == (4 * CELL + 2, 4 * CELL + 2) and note == ""  # grid: 4 x 4
    assert np.array_equal(pixels(first), pixels(again)) and not np.array_equal(pixels(first), pixels(other))
    cold, _ = client.predict(1, 0.1, "normal", api_name="/generate")
    assert not np.array_equal(pixels(first), pixels(cold))
    gmm, note = client.predict(1, 1.0, "gmm", api_name="/generate")
    assert Image.open(gmm).size == Image.open(first).size and note == ""
    assert not np.array_equal(pixels(gmm), pixels(first))


def test_the_gmm_prior_needs_a_checkpoint_that_holds_one(run_dir) -> None:
    explorer = Explorer.from_checkpoint(run_dir)
    assert explorer.prior is not None and explorer.sample(4, 0, 1.0, "gmm").shape == (4, 3, SIZE, SIZE)
    plain = Explorer(explorer.vae, explorer.config, explorer.test, prior=None)
    with pytest.raises(UserError, match="holds no fitted prior"):
        plain.sample(4, 0, 1.0, "gmm")


@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_morph_between_two_uploads_starts_at_a_and_ends_at_b(client, run_dir, files, mode) -> None:
    vae, _, _ = load_model(run_dir)
    a, b = (torch.from_numpy(load_image(files[k], SIZE)).permute(2, 0, 1).float() / 255 for k in ("a", "b"))
    client.predict(handle(files["a"]), 0.5, mode, api_name="/morph_upload_a")
    *_, frame, strip, gif, note = client.predict(handle(files["b"]), 0.5, mode, api_name="/morph_upload_b")
    assert note == f"a.png → b.jpg ({mode})"
    assert Image.open(frame).size == (SIZE, SIZE)
    assert Image.open(strip).size == (10 * CELL + 2, CELL + 2)  # morph.steps = 10
    assert Image.open(gif).size == (8 * SIZE, 8 * SIZE) and Image.open(gif).n_frames >= 2  # enlarged to 128 px
    start = client.predict(0.0, mode, api_name="/morph_frame")
    end = client.predict(1.0, mode, api_name="/morph_frame")
    assert close(pixels(start), reconstruction(vae, a)) and close(pixels(end), reconstruction(vae, b))
    assert not close(pixels(start), pixels(end))


def test_steer_at_zero_is_the_face_and_each_slider_moves_it(client, run_dir) -> None:
    vae, config, _ = load_model(run_dir)
    face = LegoFacesDataModule.ready(config.data).split_images("test")[3].float() / 255
    _, shown, _ = client.predict(3, 0, 0, 0, 0, api_name="/steer_pick")  # latent 4: four sliders
    at_zero = client.predict(0, 0, 0, 0, api_name="/steer")
    assert close(pixels(at_zero), reconstruction(vae, face)) and close(pixels(shown), pixels(at_zero))
    moved = client.predict(3.0, 0, 0, 0, api_name="/steer")
    assert Image.open(moved).size == (SIZE, SIZE) and not np.array_equal(pixels(moved), pixels(at_zero))


def test_reconstruct_shows_each_photo_beside_its_reconstruction_with_its_error(client, run_dir, files) -> None:
    vae, _, _ = load_model(run_dir)
    items, note = client.predict([handle(files["a"]), handle(files["notes"]), handle(files["b"])],
                                 api_name="/reconstruct")
    assert [item["caption"].split(":")[0] for item in items] == ["a.png", "b.jpg"]
    assert "'notes.txt' is not an image" in note
    for item, name in zip(items, ("a", "b")):
        pair = pixels(item["image"])
        assert pair.shape == (CELL + 2, 2 * CELL + 2, 3)
        x = torch.from_numpy(load_image(files[name], SIZE)).permute(2, 0, 1).float() / 255
        error = (vae.reconstruct(x[None])[0] - x).pow(2).sum().item()
        assert float(item["caption"].split("error ")[1].split(" ")[0]) == pytest.approx(error, abs=0.01)


@pytest.mark.parametrize(("name", "expected"), [
    ("notes", "'notes.txt' is not an image the explorer can read"),
    ("empty", "'empty.png' is empty (0 bytes)"),
    ("cut", "'cut.png' cannot be read: image file is truncated"),
    ("huge", "'huge.png' is 400,000,000 pixels, over the limit of 40,000,000 (max_pixels)"),
    ("big", "'big.png' is 9000 x 9000 = 81,000,000 pixels, over the limit of 40,000,000 (max_pixels)"),
])
def test_a_bad_upload_is_answered_in_the_page(client, files, name, expected) -> None:
    for endpoint in ("/morph_upload_a", "/steer_upload"):
        args = (handle(files[name]), 0.5, "linear") if endpoint == "/morph_upload_a" else (handle(files[name]), 0, 0, 0, 0)
        note = client.predict(*args, api_name=endpoint)[-1]
        assert expected in note, (endpoint, note)
    assert Image.open(client.predict(0.3, "linear", api_name="/morph_frame")).size == (SIZE, SIZE)  # still serving


def test_the_page_morphs_in_a_browser_and_stays_on_this_machine(app_url) -> None:
    executable = chromium_path()
    if not os.environ.get("LEGO_VAE_TEST_CHROMIUM"):  # CI sets it: there a missing browser fails the test
        if executable is None:
            pytest.skip("no chromium on this machine: `make test-browser-deps` installs Debian's (README, Tests)")
        pytest.importorskip("playwright", reason="Playwright's Python package is in the dev extra")
    artifact = Path(os.environ.get("LEGO_VAE_TEST_ARTIFACTS", ROOT / "outputs" / "test-artifacts")) / "explore_morph.png"
    seen = morph_in_browser(app_url, artifact, executable)
    assert seen["t"] == "0" and seen["after"] != seen["before"]
    assert artifact.stat().st_size > 10_000 and Image.open(artifact).size == (1280, 1000)
    outside = [url for url in seen["requests"] if not url.startswith((app_url, "data:", "blob:"))]
    assert seen["requests"] and outside == [], outside


def test_a_study_folder_means_its_refit(run_dir, tmp_path) -> None:
    study = tmp_path / "study"
    for trial in (3, 5):
        (study / "refit" / f"trial_{trial:04d}" / "checkpoints").mkdir(parents=True)
        shutil.copy(run_dir / "checkpoints" / "best.ckpt", study / "refit" / f"trial_{trial:04d}" / "checkpoints")
        time.sleep(0.01)
    assert study_refit_run(study) == study / "refit" / "trial_0005"  # no best.yaml: the newest refit
    (study / "best.yaml").write_text("value: 1.0\ntrial: 3\n")
    assert checkpoint_file(study) == study / "refit" / "trial_0003" / "checkpoints" / "best.ckpt"
    assert checkpoint_file(run_dir) == run_dir / "checkpoints" / "best.ckpt"


def test_the_explorer_removes_its_folder_of_morph_gifs_when_it_ends(run_dir, tmp_path) -> None:
    # Each start used to leave a lego-vae-explore-* folder of GIFs in the system's temporary folder for good.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with running_explorer(run_dir, tmp_path, env={"TMPDIR": str(tmp)}):  # stopped with SIGTERM, as a service is
        [folder] = tmp.glob("lego-vae-explore-*")
        assert list(folder.glob("morph-*.gif"))  # the morph view's first strip, written as the page is built
    assert not list(tmp.glob("lego-vae-explore-*"))
    assert "Traceback" not in (tmp_path / "explore.log").read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_explorer_stopped_while_starting_ends_cleanly(run_dir, tmp_path, signum) -> None:
    # A stop while Gradio was still starting its server (its start-up probes) used to raise KeyboardInterrupt
    # inside Gradio: a traceback on a busy machine, once exit status 130, and once (CI) a process that never
    # ended. Sent as soon as the explorer announces itself: exit status 0, our last line, its folder gone.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    log = tmp_path / "explore.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "lego_vae.explore", f"checkpoint={run_dir}",
                                 f"server.port={free_port()}", f"hydra.run.dir={tmp_path / 'hydra'}"], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "TMPDIR": str(tmp)})
        try:
            wait_until(lambda: "explorer: http" in log.read_text() or proc.poll() is not None)
            proc.send_signal(signum)
            assert proc.wait(timeout=HANG_GUARD_S) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert text.strip().splitlines()[-1] == "explorer: stopped"
    assert not list(tmp.glob("lego-vae-explore-*"))


def test_a_stop_signal_is_noted_not_raised_and_the_handlers_come_back() -> None:
    # The handler only notes the signal (raising inside Gradio's start-up could hang the process at exit).
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with stop_requests(block=True) as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        wait_until(lambda: stop.requested)
    assert {sig: signal.getsignal(sig) for sig in before} == before
    with stop_requests(block=False) as stop:  # a non-blocking server leaves the process's handlers alone
        assert {sig: signal.getsignal(sig) for sig in before} == before


def test_a_wrong_checkpoint_is_one_line_as_in_generate(tmp_path) -> None:
    # The same load_checkpoint as generate (its tests cover a foreign file); one process start is enough here.
    proc = subprocess.run([sys.executable, "-m", "lego_vae.explore", "checkpoint=/no/such/model.ckpt",
                           f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["error: checkpoint: no such file '/no/such/model.ckpt' (expected a .ckpt written by train.py)"]


def handle(path: Path):
    return gradio_client.handle_file(str(path))
