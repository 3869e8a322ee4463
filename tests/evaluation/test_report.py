"""The HTML report on real files: embedded pictures, exact metrics, escaping, and TensorBoard curves."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from lego_vae.evaluation.page import SORT_JS, pixel_scale
from lego_vae.evaluation.report import TRIAL_COLUMNS, read_curves, write_report
from tests.conftest import HANG_GUARD_S

METRICS = {
    "val_loss": 41.23456789012345,
    "final_val_loss": 41.9,
    "test_loss": 42.000000000000014,
    "test_recon": 30.5,
    "test_kl": 1.0 / 3.0,
    "epochs": 25,
    "seconds": 123456.78,
    "fid": None,
    "fid_reason": "no Inception weights <offline>",
    "best_checkpoint": "outputs/run/checkpoints/best.ckpt",
    "resumed_from": None,
}
CONFIG = {
    "seed": 0,
    "model": {"hidden": 512, "latent": 24, "channels": [8, 16]},
    "data": {"image_size": 16, "note": "<script>alert('x')</script>"},
}
CURVES = [
    {"epoch": 0, "train/loss": 60.0, "val/loss": 58.0, "val/recon": 50.0, "val/kl": 8.0},
    {"epoch": 1, "train/loss": 52.0, "val/loss": 51.0, "val/recon": 42.0, "val/kl": 9.0},
    {"epoch": 2, "val/loss": 47.5},  # rows may miss keys
]
TRIALS = [
    {"number": 0, "hidden": 512, "latent": 24, "state": "COMPLETE", "value": 41.5, "epochs": 10,
     "seconds": 12.3},
    {"number": 1, "hidden": 1024, "latent": 8, "state": "PRUNED", "value": 55.25, "epochs": 3,
     "seconds": 4.0},
    {"number": 2, "hidden": 128, "latent": 64, "state": "FAIL", "value": None, "epochs": 0,
     "seconds": None},
]


class Page(HTMLParser):
    """Collects what the tests look at: images, metric rows, tables, every tag that could load something."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.imgs: list[dict] = []
        self.metric_rows: dict[str, dict] = {}
        self.tables: list[dict] = []  # {"class": ..., "headers": [...], "rows": n}
        self.tags: list[tuple[str, dict]] = []  # script, style, link, and anything with src/href
        self.scripts: list[str] = []
        self._row: dict | None = None
        self._in_script = self._in_tbody = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "style", "link") or "src" in a or "href" in a:
            self.tags.append((tag, a))
        if tag == "img":
            self.imgs.append(a)
        elif tag == "script":
            self._in_script = True
            self.scripts.append("")
        elif tag == "table":
            self.tables.append({"class": a.get("class", ""), "headers": [], "rows": 0, "sort": []})
        elif tag == "tbody":
            self._in_tbody = True
        elif tag == "tr":
            if self._in_tbody and self.tables:
                self.tables[-1]["rows"] += 1
                self.tables[-1]["sort"].append([])
            if "data-metric" in a:
                self._row = {"reason": a.get("data-reason"), "value": None, "text": ""}
                self.metric_rows[a["data-metric"]] = self._row
        elif tag == "td":
            if self._row is not None and "data-value" in a:
                self._row["value"] = a["data-value"]
            if self._in_tbody and "data-sort" in a:
                self.tables[-1]["sort"][-1].append(a["data-sort"])
        elif tag == "th" and self.tables:
            self.tables[-1]["headers"].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
        elif tag == "tbody":
            self._in_tbody = False
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._row is not None:
            self._row["text"] += data
        if self._in_script:
            self.scripts[-1] += data
        table = self.tables[-1] if self.tables else None
        if table and table["headers"] and self.lasttag == "th" and not table["rows"]:
            table["headers"][-1] += data


def decode(src: str) -> Image.Image:
    head, _, payload = src.partition(",")
    assert head.startswith("data:image/") and head.endswith(";base64"), head[:40]
    image = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
    image.load()
    return image


@pytest.fixture
def pictures(tmp_path: Path) -> dict[str, Path]:
    pics = tmp_path / "pictures"
    pics.mkdir()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(pics / "samples.png")
    Image.new("L", (300, 120), 128).save(pics / "reconstructions.png")
    frames = [Image.new("RGB", (16, 16), (i * 60, 100, 255 - i * 60)) for i in range(4)]
    frames[0].save(pics / "morph.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(pics / "morph.gif").n_frames == 4
    return {
        "samples <8x8>": pics / "samples.png",
        "reconstructions": pics / "reconstructions.png",
        "morph": pics / "morph.gif",
        "never written": pics / "nope.png",
    }


@pytest.fixture
def plots(tmp_path: Path) -> list[Path]:
    out = []
    for name in ("history", "space"):
        path = tmp_path / "plots" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (640, 480), "white").save(path)
        out.append(path)
    return out


def assert_self_contained(page: Page) -> None:
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            value = (attrs.get(key) or "").strip().lower()
            assert not value.startswith(("http://", "https://", "//")), (tag, value)
            if key in attrs and key == "src":
                assert value.startswith("data:"), (tag, value[:40])
        assert tag != "link", attrs  # styles are inline, never a linked file
        if tag == "script":
            assert "src" not in attrs


def test_run_report(tmp_path: Path, pictures: dict[str, Path]) -> None:
    path = tmp_path / "run-7" / "report.html"
    out = write_report(path, "run <7>", CONFIG, METRICS, pictures, curves=CURVES)
    assert out == tmp_path / "run-7" / "report.html"
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary file left behind
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    assert_self_contained(page)

    # three pictures that exist + the loss curves
    assert len(page.imgs) == 3 + 1
    decoded = {img["alt"]: decode(img["src"]) for img in page.imgs}
    assert set(decoded) == {"samples <8x8>", "reconstructions", "morph", "loss curves"}
    assert decoded["morph"].format == "GIF" and decoded["morph"].n_frames == 4  # still animated
    assert decoded["loss curves"].format == "PNG" and decoded["loss curves"].width > 400
    # Face pictures at a whole-number scale of their 16 px faces: 4x, or 3x where 4x would be wider than the page.
    shown = {img["alt"]: (int(img["width"]), int(img["height"])) for img in page.imgs if "pixel" in img.get("class", "")}
    assert shown == {"samples <8x8>": (128, 128), "morph": (64, 64), "reconstructions": (900, 360)}
    assert "image-rendering:pixelated" in text
    assert "never written" in text and "nope.png" in text  # a missing picture is a note

    # metrics: every key present, every number exact, None as a dash with its reason
    shown = set(page.metric_rows) | {r["reason"] for r in page.metric_rows.values() if r["reason"]}
    assert shown == set(METRICS)
    for name, row in page.metric_rows.items():
        value = METRICS[name]
        if isinstance(value, (int, float)):
            assert row["value"] is not None and float(row["value"]) == value, name
            assert type(value)(row["value"]) == value
        else:
            assert row["value"] is None, name
    assert page.metric_rows["fid"]["reason"] == "fid_reason"
    assert "\u2014" in page.metric_rows["fid"]["text"]
    assert "no Inception weights <offline>" in page.metric_rows["fid"]["text"]
    assert page.metric_rows["val_loss"]["text"].strip() == "val_loss41.23"  # 4 significant digits
    assert page.metric_rows["test_kl"]["text"].strip() == "test_kl0.3333"
    assert page.metric_rows["epochs"]["text"].strip() == "epochs25"
    # Numbers sit right beside their names under a right-aligned header; paths and reasons go to a note column.
    metrics_table = text.split('<table class="metrics">')[1].split("</table>")[0]
    assert '<th>metric</th><th class="num">value</th><th>note</th>' in metrics_table
    assert '<td>best_checkpoint</td><td class="num"></td><td class="note">outputs/run/' in metrics_table
    assert "<td>fid</td><td class=\"num\">\u2014</td><td class=\"note\"><span class=\"reason\">" in metrics_table

    # no study parts, no script on a run page
    assert not page.scripts and all("sortable" not in t["class"] for t in page.tables)


@pytest.mark.parametrize(("width", "face_px", "scale"), [
    (274, 32, 3),     # the demo's 8 x 8 grid of 32 px faces: faces at 96 CSS px
    (32, 32, 3),      # its morph GIF, one face
    (342, 32, 3),     # a 10-step strip still fits the page at 3x
    (530, 64, 2),     # 64 px faces: 2x
    (16, 16, 4),      # never more than 4x
    (1042, 128, 1),   # big faces stay as they are
    (36, None, 3),    # unknown face size: the picture is one face
])
def test_pixel_scale(width: int, face_px: int | None, scale: int) -> None:
    assert pixel_scale(width, face_px) == scale


def test_escaping(tmp_path: Path, pictures: dict[str, Path]) -> None:
    out = write_report(tmp_path / "report.html", "<b>title</b>", CONFIG, METRICS, pictures)
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "<script>" not in text and not page.scripts
    assert "&lt;b&gt;title&lt;/b&gt;" in text and "<b>" not in text
    assert "no Inception weights &lt;offline&gt;" in text
    assert "hidden: 512" in text and "  latent: 24" in text  # indented YAML, keys in their order
    assert text.index("<pre>seed: 0") < text.index("\nmodel:") < text.index("\ndata:")


def test_study_report(tmp_path: Path, pictures: dict[str, Path], plots: list[Path]) -> None:
    images = {"best samples": pictures["samples <8x8>"]}
    broken = tmp_path / "plots" / "broken.png"
    broken.write_text("not a png")
    out = write_report(tmp_path / "study" / "report.html", "study", CONFIG, {"best_value": 41.5}, images,
                       curves=CURVES, trials=TRIALS, plots=[*plots, tmp_path / "plots" / "missing.png",
                                                            broken])
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    assert_self_contained(page)
    assert len(page.imgs) == 1 + 1 + len(plots)
    for img in page.imgs:
        decode(img["src"])
    assert "missing.png" in text and "broken.png" in text and "unreadable" in text

    trials = [t for t in page.tables if "sortable" in t["class"]]
    assert len(trials) == 1
    assert trials[0]["headers"] == list(TRIAL_COLUMNS) == [
        "number", "hidden", "latent", "state", "value", "epochs", "seconds"]
    assert trials[0]["rows"] == len(TRIALS)
    assert len(page.scripts) == 1 and "addEventListener" in page.scripts[0] and "sort" in page.scripts[0]
    assert 'data-sort=""' in text  # the failed trial's value, sorted last
    assert 'data-type="num">value<' in text and 'data-type="text">state<' in text


def test_no_curves_no_images(tmp_path: Path) -> None:
    out = write_report(tmp_path / "report.html", "bare", {}, {"loss": math.nan}, {}, curves=[{"epoch": 0}])
    page = Page(out.read_text(encoding="utf-8"))
    assert page.imgs == []
    assert page.metric_rows["loss"]["value"] == "nan"


def test_read_curves(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    train, val = [60.5, 52.25, 48.125], [58.0, 51.5, 47.75]
    with SummaryWriter(str(tmp_path / "tb")) as writer:
        for epoch in range(3):
            step = 10 * (epoch + 1)  # logged at the global step, one value per epoch
            writer.add_scalar("train/loss", train[epoch], step)
            writer.add_scalar("val/loss", val[epoch], step)
            writer.add_scalar("lr", 1e-3, step)  # not a curve
    rows = read_curves(tmp_path / "tb")
    assert rows == [{"epoch": e, "train/loss": train[e], "val/loss": val[e]} for e in range(3)]

    assert read_curves(tmp_path / "absent") == []
    (tmp_path / "empty").mkdir()
    assert read_curves(tmp_path / "empty") == []


def test_read_curves_lightning_layout(tmp_path: Path) -> None:
    """Lightning's layout: an "epoch" scalar at each logging step, log_hyperparams' val/loss at step 0."""
    from torch.utils.tensorboard import SummaryWriter

    val = [94.5, 89.5, 83.5]
    with SummaryWriter(str(tmp_path / "tb")) as writer:
        writer.add_scalar("val/loss", val[0], 0)  # the hparams metric: not an epoch of its own
        for epoch in range(3):
            step = 8 * epoch + 7
            writer.add_scalar("epoch", epoch, step)
            writer.add_scalar("train/loss", 80.0 - epoch, step)
            writer.add_scalar("val/loss", val[epoch], step)
            writer.add_scalar("val/recon", val[epoch] - 0.5, step)
            writer.add_scalar("val/kl", 0.5, step)
        writer.add_scalar("epoch", 3, 30)
        writer.add_scalar("test/loss", 50.0, 30)
    rows = read_curves(tmp_path / "tb")
    assert rows == [{"epoch": e, "train/loss": 80.0 - e, "val/loss": val[e], "val/recon": val[e] - 0.5,
                     "val/kl": 0.5} for e in range(3)]


def test_report_file_mode_and_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text("old")
    write_report(path, "run", {}, {"val_loss": 1.5}, {})
    assert "old" not in path.read_text() and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # readable by others, like any file written here


# A stand-in for the few DOM calls the sort script makes, so node can run it without a browser.
FAKE_DOM = """
const t = JSON.parse(require("fs").readFileSync(0, "utf8"));
const el = (attrs) => ({attrs: {...attrs}, dataset: {}, on: {},
  getAttribute(k) { return k in this.attrs ? this.attrs[k] : null; },
  setAttribute(k, v) { this.attrs[k] = String(v); }, removeAttribute(k) { delete this.attrs[k]; },
  addEventListener(type, f) { this.on[type] = f; }});
const heads = t.types.map((type) => Object.assign(el({}), {dataset: {type}}));
const rows = t.sort.map((keys, id) => ({id, cells: keys.map((sort) => ({dataset: {sort}}))}));
const body = {rows, appendChild(r) { rows.splice(rows.indexOf(r), 1); rows.push(r); }};
const table = {tHead: {rows: [{cells: heads}]}, tBodies: [body]};
new Function("document", t.js)({querySelectorAll: () => [table]});
const order = (col) => { heads[col].on.click(); return rows.map((r) => r.id); };
console.log(JSON.stringify(t.clicks.map(order)));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="no node to run the sort script")
def test_sort_script(tmp_path: Path) -> None:
    trials = [*TRIALS, {"number": 3, "hidden": 96, "latent": None, "state": "RUNNING", "value": None}]
    out = write_report(tmp_path / "report.html", "study", {}, {}, {}, trials=trials)
    table = next(t for t in Page(out.read_text(encoding="utf-8")).tables if "sortable" in t["class"])
    types = ["num" if c != "state" else "text" for c in TRIAL_COLUMNS]
    col = {c: i for i, c in enumerate(TRIAL_COLUMNS)}
    clicks = [col["hidden"], col["hidden"], col["value"], col["value"], col["state"]]
    stdin = json.dumps({"types": types, "sort": table["sort"], "js": SORT_JS, "clicks": clicks})
    done = subprocess.run(["node", "-e", FAKE_DOM], input=stdin, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr
    by_hidden, by_hidden_desc, by_value, by_value_desc, by_state = json.loads(done.stdout)
    assert by_hidden == [3, 2, 0, 1]  # numeric: 96 < 128 < 512 < 1024, not as text
    assert by_hidden_desc == [1, 0, 2, 3]
    assert by_value == [0, 1, 2, 3] and by_value_desc == [1, 0, 2, 3]  # missing values last both ways
    assert by_state == [0, 2, 1, 3]  # COMPLETE, FAIL, PRUNED, RUNNING


def test_the_confusion_table_is_its_own_section_not_metric_rows(tmp_path: Path) -> None:
    table = {"mouth": {"classes": ["smile", "lipstick"], "counts": [[10, 0], [8, 2]]}}
    path = write_report(tmp_path / "report.html", "run", {}, {"psnr": 25.0, "attr_confusion_recon": table}, {})
    page = path.read_text()
    assert "<h2>What reconstructions lose</h2>" in page
    assert "mouth: lipstick -&gt; smile 80% (of 10)" in page
    assert '<table class="metrics" data-factor="mouth">' in page and "<td>lipstick</td>" in page
    assert 'data-metric="attr_confusion_recon' not in page  # not flattened into the metrics table
