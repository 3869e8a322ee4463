"""Milliseconds from moving a slider of the face explorer to having the new face: the morph and steer sliders.

    python -m bench.explore_latency [--quick] [--out DIR] [--repeats 40] [--size 64] [--threads N]

What is measured, and why:
- The app as `python -m lego_vae.explore` serves it: `build_app` + `launch` on a free local port, over a
  checkpoint of the default model at `--size` px (conv, hidden 512, latent 32). Its weights are a
  fresh initialisation saved as a lego-vae checkpoint (decoding costs the same whatever the weights),
  with the layers into and out of the latent space scaled up so that every slider move changes the
  face: the browser side waits for a new picture, and an unchanged one is the same file.
- "app": one `gradio_client` call of the slider's endpoint (`/morph_frame`, `/steer`), the path a
  browser's slider event takes: HTTP + Gradio's queue + decode + PNG encoding + the client fetching
  the PNG. "decode": the same work in-process without the web stack (the Explorer's decode and the
  PNG encoding), so the web stack's share is the difference.
- Each slider moves to a new value on every call (a real drag), the sides interleaved
  (`common.interleaved`) after untimed warm-up calls. Reported: median and 95th percentile.

Target: every slider answers within 100 ms at 64 px on this CPU (the app side's 95th percentile).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench import common
from lego_vae.config import to_plain
from lego_vae.model.build import build_vae

ROOT = Path(__file__).resolve().parents[1]
NAME = "explore_latency"
TARGET_MS = 100.0
SENSITIVITY = 20.0  # weights of the posterior-mean and latent-to-hidden layers are scaled by this


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_checkpoint(args, folder: Path) -> Path:
    """A lego-vae checkpoint of the default model at args.size px, freshly initialised, on tiny synthetic data."""
    overrides = [f"data.image_size={args.size}", f"data.num_images={args.images}",
                 f"data.cache_dir={folder / 'cache'}", "trainer.accelerator=cpu"]
    if args.quick:
        overrides += ["model.hidden=32", "model.latent=4", "model.channels=8"]
    plain = common.train_config(*overrides)
    torch.manual_seed(0)
    vae = build_vae(plain)
    with torch.no_grad():  # a fresh VAE barely reacts to z: scale its way in and out so every slider move shows
        for layer in (vae.mu, vae.decoder_fc):
            for param in layer.parameters():
                param.mul_(SENSITIVITY)
    path = folder / "model.ckpt"
    torch.save({"hyper_parameters": {"config": to_plain(plain)}, "state_dict": {f"vae.{k}": v for k, v in vae.state_dict().items()}},
               path)
    return path


class HttpCaller:
    """One slider event over HTTP as the page sends it: post the values, read the result, fetch the PNG."""

    def __init__(self, base: str) -> None:
        import httpx

        self.base, self.client = base, httpx.Client(timeout=30)

    def __call__(self, api_name: str, data: list) -> None:
        event = self.client.post(f"{self.base}/call/{api_name}", json={"data": data}).json()["event_id"]
        stream = self.client.get(f"{self.base}/call/{api_name}/{event}").text
        url = stream.split('"url": "', 1)[1].split('"', 1)[0]  # the decoded face, served as a PNG file
        self.client.get(url).raise_for_status()


def browser_times(url: str, executable: str, repeats: int) -> dict[str, list[float]]:
    """Seconds from a key press on a slider in headless Chromium to the new face loaded in the page."""
    import time

    from playwright.sync_api import sync_playwright

    from tests.explorer.helpers import CHROMIUM_FLAGS

    changed = """([sel, old]) => { const i = document.querySelector(sel + ' img');
                   return i && i.src !== old && i.complete && i.naturalWidth > 0; }"""
    times: dict[str, list[float]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        for tab, slider, image in (("Morph", "#morph-t", "#morph-frame"), ("Steer", ".steer-slider", "#steer-out")):
            page.get_by_role("tab", name=tab).click()
            page.locator(f"{image} img").wait_for(state="visible")
            page.locator(f"{slider} input[type=range]").first.focus()
            key, samples = "End", []
            for i in range(repeats + 2):
                old = page.evaluate(f"() => document.querySelector('{image} img').src")
                start = time.perf_counter()
                page.keyboard.press(key)
                try:
                    page.wait_for_function(changed, arg=[image, old], polling="raf", timeout=10_000)
                except Exception as err:
                    raise RuntimeError(f"{tab}: no new face after {key} (press {i})") from err
                if i >= 2:  # the first two are warm-up
                    samples.append(time.perf_counter() - start)
                key = "Home" if key == "End" else "End"  # end to end, so that the face surely changes
            times[f"{tab.lower()}, browser"] = samples
        browser.close()
    return times


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the tables and return (and write) the result dict."""
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--images", type=int, default=200, help="synthetic faces (their test split fills the gallery)")
    p.add_argument("--no-browser", action="store_true", help="skip the headless-Chromium side")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.size, args.images = 3, 16, 64
    with common.limit_threads(common.threads_of(args)):
        return run(args)


def run(args) -> dict:
    """The benchmark itself, for parsed arguments."""
    from lego_vae.explorer.app import build_app, launch
    from lego_vae.explorer.serve import validate_explore
    from lego_vae.explorer.session import Explorer
    from lego_vae.pictures import to_pil

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        settings = validate_explore(common.composed("explore", f"checkpoint={tmp}/model.ckpt",
                                                    f"server.port={free_port()}"))
        explorer = Explorer.from_checkpoint(write_checkpoint(args, Path(tmp)), "cpu")
        app = build_app(explorer, settings)
        launch(app, settings, block=False)
        try:
            a, b = explorer.test_face(0), explorer.test_face(1)
            dims = explorer.steer_dims(settings.steer.dims)
            rng = np.random.default_rng(0)
            http = HttpCaller(f"http://127.0.0.1:{settings.server.port}/gradio_api")

            def png(face: torch.Tensor) -> None:
                to_pil(face).save(io.BytesIO(), format="png")

            sides = {
                "morph, decode": lambda: png(explorer.decode(explorer.morph_latent(a, b, rng.uniform(), "linear"))),
                "morph, http": lambda: http("morph_frame", [rng.uniform(), "linear"]),
                "steer, decode": lambda: png(explorer.steer(a, dims, rng.uniform(-3, 3, len(dims)).tolist())),
                "steer, http": lambda: http("steer", rng.uniform(-3, 3, len(dims)).tolist()),
            }
            common.interleaved(sides, repeats=3)  # warm-up: first requests, allocator, PNG encoder
            times = common.interleaved(sides, repeats=args.repeats)
            executable = shutil.which("chromium")
            if executable and not args.no_browser:
                times |= browser_times(f"http://127.0.0.1:{settings.server.port}/", executable, args.repeats)
        finally:
            app.close()
    results = [{"slider": name, "median ms": 1000 * common.median(t),
                "p95 ms": 1000 * float(np.percentile(t, 95)), "fastest ms": 1000 * min(t)}
               for name, t in times.items()]
    worst = max(r["p95 ms"] for r in results if not r["slider"].endswith("decode"))
    targets = [common.target(f"slider answer at {args.size} px (p95, worst of http and browser)",
                             f"<= {TARGET_MS:g} ms", worst, worst <= TARGET_MS)]
    settings_out = {"size": args.size, "repeats": args.repeats, "latent": explorer.latent,
                    "load_before": load_before, "load_after": os.getloadavg()[0]}
    return common.report(NAME, settings_out, results, targets, out=args.out)


if __name__ == "__main__":
    main()
