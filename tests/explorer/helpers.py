"""Starting the explorer in a subprocess, and driving its page in headless Chromium (tests and the README picture).

    python -m tests.explorer.helpers RUN docs/explore.png     # the README's screenshot of the morph view
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import HANG_GUARD_S

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_explorer(checkpoint: Path, out_dir: Path, *overrides: str, timeout: float = HANG_GUARD_S,
                     env: dict[str, str] | None = None):
    """`python -m lego_vae.explore checkpoint=...` on a free local port; yields its URL once it answers, stops it after.

    It waits for the app to answer or to exit, however slow its start-up; timeout is a hang guard, not a verdict.
    env: environment variables to set for it.
    """
    port = free_port()
    log = (out_dir / "explore.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "lego_vae.explore", f"checkpoint={checkpoint}",
                             f"server.port={port}", f"hydra.run.dir={out_dir / 'hydra'}", *overrides],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the explorer exited ({proc.returncode}):\n{(out_dir / 'explore.log').read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"hang guard: the explorer neither answered nor exited in {timeout} s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:  # it ends cleanly on SIGTERM (its temporary folder removed), however long that takes here
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def chromium_path() -> str | None:
    """The Chromium to drive: $LEGO_VAE_TEST_CHROMIUM (set by CI from `make -s test-browser-deps`), else Debian's."""
    return os.environ.get("LEGO_VAE_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def morph_in_browser(url: str, screenshot: Path, executable: str) -> dict:
    """Open the page, go to Morph, move the slider to A (Home key); return the frame's sources and every request."""
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)  # Gradio keeps a connection open: the page never goes network-idle
            page.get_by_role("tab", name="Morph").click()
            frame = page.locator("#morph-frame img")
            frame.wait_for(state="visible", timeout=HANG_GUARD_S * 1000)
            before = frame.get_attribute("src")
            # The frame's src as the page resolves it, read before the key press: read after it, a fast answer
            # could already have replaced the frame, and the wait below would wait for a change that never comes.
            old_src = page.evaluate("() => document.querySelector('#morph-frame img').src")
            page.locator("#morph-t input[type=range]").focus()
            page.keyboard.press("Home")  # t = 0: the face becomes A
            page.wait_for_function(
                "old => { const i = document.querySelector('#morph-frame img'); return i && i.src !== old; }",
                arg=old_src, timeout=HANG_GUARD_S * 1000)
            after = frame.get_attribute("src")
            t_value = page.locator("#morph-t input[type=number]").input_value()
            page.wait_for_timeout(500)  # let the new frame paint
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    return {"before": before, "after": after, "t": t_value, "requests": requests}


if __name__ == "__main__":
    import tempfile

    run, picture = Path(sys.argv[1]), Path(sys.argv[2])
    executable = chromium_path()
    if executable is None:
        sys.exit("no chromium: make test-browser-deps")
    with tempfile.TemporaryDirectory() as tmp, running_explorer(run.resolve(), Path(tmp)) as url:
        print(morph_in_browser(url, picture.resolve(), executable)["t"], "->", picture)
