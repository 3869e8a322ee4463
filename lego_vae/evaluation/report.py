"""One self-contained HTML page for a training run or a tuning study: pictures embedded, no network needed."""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import UnidentifiedImageError

from lego_vae.config import get_key, to_plain
from lego_vae.evaluation.judge import confusion_losses
from lego_vae.evaluation.page import CSS, MISSING, SORT_JS, esc, figure_html, fmt, is_number
from lego_vae.files import write_text

CONFUSION_KEY = "attr_confusion_recon"  # shown as its own section, not as rows of the metrics table
CURVE_TAGS = ("train/loss", "val/loss", "val/recon", "val/kl")
TRIAL_COLUMNS = ("number", "hidden", "latent", "state", "value", "epochs", "seconds")  # all numbers but state


def flatten_metrics(metrics: Mapping) -> dict:
    """Nested metrics one level deep ({"fd_judge": {"gmm": 3.1}}) as rows of their own ("fd_judge.gmm": 3.1)."""
    flat: dict = {}
    for name, value in metrics.items():
        if isinstance(value, Mapping):
            flat.update({f"{name}.{key}": inner for key, inner in value.items()})
        else:
            flat[name] = value
    return flat


def _metrics_html(metrics: Mapping) -> str:
    metrics = flatten_metrics(metrics)

    # A None metric shows its "<name>_reason" (or "<prefix>_reason", e.g. kid_std -> kid_reason) beside it.
    def reason_key(name: str) -> str | None:
        parts = name.split(".")[0].split("_")
        keys = ("_".join(parts[:n]) + "_reason" for n in range(len(parts), 0, -1))
        return next((key for key in keys if key != name and key in metrics), None)

    folded = {name: key for name, v in metrics.items() if v is None and (key := reason_key(name))}
    # Three columns: numbers right-aligned right beside their names; a path, a string or a reason goes to the
    # note column, where its length cannot push the numbers away from their labels.
    rows = []
    for name, value in metrics.items():
        if name in folded.values():
            continue  # shown beside the metric it explains
        attrs, cell, note = f' data-metric="{esc(name)}"', "", ""
        if is_number(value):
            cell = f'<td class="num" data-value="{esc(repr(value))}">{esc(fmt(value))}</td>'
        elif value is None:
            cell = f'<td class="num">{MISSING}</td>'
        else:
            cell, note = '<td class="num"></td>', esc(fmt(value))
        if name in folded:
            attrs += f' data-reason="{esc(folded[name])}"'
            note = f'<span class="reason">({esc(metrics[folded[name]])})</span>'
        rows.append((attrs, name, cell, note))
    notes = any(note for *_, note in rows)
    note_head = "<th>note</th>" if notes else ""
    body = "".join(f"<tr{attrs}><td>{esc(name)}</td>{cell}" + (f'<td class="note">{note}</td>' if notes else "")
                   + "</tr>" for attrs, name, cell, note in rows)
    return (f'<table class="metrics"><thead><tr><th>metric</th><th class="num">value</th>{note_head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _curves_png(curves: list[dict]) -> bytes | None:
    """train/loss and val/loss, val/recon and val/kl beside them if logged; None when nothing to draw."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for i, row in enumerate(curves):
        for tag in CURVE_TAGS:
            v = row.get(tag)
            if is_number(v) and math.isfinite(v):
                xs, ys = series.setdefault(tag, ([], []))
                epoch = row.get("epoch")
                xs.append(epoch if is_number(epoch) else i)
                ys.append(float(v))
    losses = [t for t in CURVE_TAGS[:2] if t in series]
    terms = [t for t in CURVE_TAGS[2:] if t in series]
    if not losses and not terms:
        return None
    ratios = [r for r, tags in ((3, losses), (2, terms)) if tags]
    fig = Figure(figsize=(2.1 * sum(ratios), 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # Agg directly: no pyplot, no global figure registry
    axes = list(fig.subplots(1, len(ratios), squeeze=False, gridspec_kw={"width_ratios": ratios})[0])
    colors = {"train/loss": "C0", "val/loss": "C1", "val/recon": "C2", "val/kl": "C3"}

    def draw(ax, tag: str) -> None:
        xs, ys = series[tag]
        ax.plot(xs, ys, color=colors[tag], marker="o" if len(xs) < 30 else None, markersize=3, label=tag)

    if losses:
        ax = axes.pop(0)
        for tag in losses:
            draw(ax, tag)
        ax.set(xlabel="epoch", ylabel="loss", title="loss")
        ax.grid(alpha=0.3)
        ax.legend()
    if terms:
        ax = axes.pop(0)
        # The KL term is often a hundredth of the reconstruction term: on one axis it would be a flat line.
        for k, tag in enumerate(terms):
            twin = ax if k == 0 else ax.twinx()
            draw(twin, tag)
            twin.set_ylabel(tag, color=colors[tag])
        ax.set(xlabel="epoch", title="validation terms")
        ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _confusion_html(table: Mapping) -> str:
    """The judge's reading of the test reconstructions per factor: the classes lost, then one table per factor."""
    lost = confusion_losses(dict(table))
    summary = ("<p>Read as another class most of the time: " + "; ".join(esc(line) for line in lost) + ".</p>"
               if lost else "<p>Every class is read as itself most of the time.</p>")
    parts = []
    for factor, entry in table.items():
        classes, counts = entry["classes"], entry["counts"]
        head = "".join(f'<th class="num">{esc(c)}</th>' for c in classes)
        rows = []
        for name, row in zip(classes, counts):
            total = sum(row)
            cells = "".join(f'<td class="num">{row[j] / total:.0%}</td>' if total else '<td class="num"></td>'
                            for j in range(len(row)))
            rows.append(f"<tr><td>{esc(name)}</td>{cells}<td class=\"num\">{total}</td></tr>")
        parts.append(f'<table class="metrics" data-factor="{esc(factor)}"><caption>{esc(factor)}: true class '
                     f'(rows) read as (columns)</caption><thead><tr><th></th>{head}<th class="num">faces</th>'
                     f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return summary + '<div class="gallery">' + "".join(parts) + "</div>"


def _trials_html(trials: list[dict]) -> str:
    heads = "".join(f'<th data-type="{"text" if c == "state" else "num"}">{c}</th>' for c in TRIAL_COLUMNS)
    rows = []
    for trial in trials:
        cells = []
        for c in TRIAL_COLUMNS:
            v = trial.get(c)
            if is_number(v) and math.isfinite(v):
                cells.append(f'<td class="num" data-sort="{esc(repr(v))}">{esc(fmt(v))}</td>')
            elif v is None or is_number(v):  # missing or nan: sorted last
                cells.append(f'<td data-sort="">{esc(fmt(v))}</td>')
            else:
                cells.append(f'<td data-sort="{esc(v)}">{esc(v)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="sortable trials"><thead><tr>{heads}</tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def _plain(value: object) -> object:
    """Plain YAML-safe data: tuples to lists, anything unknown (a Path, say) to its string."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _pictures_html(entries: list[tuple[str, Path]], pixel: bool, face_px: int | None = None) -> str:
    parts, missing = [], []
    for caption, file in entries:
        file = Path(file)
        try:
            parts.append(figure_html(file.read_bytes(), caption, pixel, face_px))
        except (OSError, UnidentifiedImageError) as err:  # a missing or broken picture is a note, not a crash
            what = "missing" if not file.exists() else f"unreadable ({type(err).__name__})"
            missing.append(f'<p class="missing">{esc(caption)}: {what}: <code>{esc(file)}</code></p>')
    return '<div class="gallery">' + "".join(parts) + "</div>" + "".join(missing)


def write_report(path: Path, title: str, config: Any, metrics: dict, images: dict[str, Path],
                 curves: list[dict] | None = None, trials: list[dict] | None = None,
                 plots: list[Path] | None = None) -> Path:
    """Write one self-contained report.html (images embedded) and return its path.

    config: the run's or study's typed config (or its plain mapping), shown whole at the end."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    context = f"{path.parent.resolve().name} \u00b7 written {time.strftime('%Y-%m-%d %H:%M')}"
    table = {k: v for k, v in metrics.items() if k != CONFUSION_KEY}
    body = [f"<h1>{esc(title)}</h1>", f'<p class="context">{esc(context)}</p>',
            "<h2>Metrics</h2>", _metrics_html(table) if table else "<p>No metrics.</p>"]
    if metrics.get(CONFUSION_KEY):
        body += ["<h2>What reconstructions lose</h2>", _confusion_html(metrics[CONFUSION_KEY])]
    if curves and (png := _curves_png(curves)) is not None:
        body += ["<h2>Loss curves</h2>", f'<div class="gallery">{figure_html(png, "loss curves", False)}</div>']
    if images:
        size = get_key(config, "data.image_size")
        face_px = size if is_number(size) and size > 0 else None
        body += ["<h2>Pictures</h2>", _pictures_html(list(images.items()), pixel=True, face_px=face_px)]
    if trials is not None:
        body += [f"<h2>Trials ({len(trials)})</h2>", "<p class=\"context\">Click a header to sort.</p>",
                 _trials_html(trials)]
    if plots:
        body += ["<h2>Tuning plots</h2>", _pictures_html([(Path(p).stem, p) for p in plots], pixel=False)]
    dumped = yaml.safe_dump(_plain(to_plain(config)), sort_keys=False, default_flow_style=False, allow_unicode=True)
    body += ["<h2>Config</h2>", f"<pre>{esc(dumped)}</pre>"]
    if trials is not None:
        body.append(f"<script>{SORT_JS}</script>")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body><main>\n"
            + "\n".join(body) + "\n</main></body></html>\n")
    return write_text(path, page)  # whole or not at all, with the umask's usual mode: reports are shared


def read_curves(tb_dir: Path) -> list[dict]:
    """Per-epoch rows of train/loss, val/loss, val/recon, val/kl (those present) from tb_dir's events."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    tb_dir = Path(tb_dir)
    if not tb_dir.is_dir() or not any(tb_dir.iterdir()):
        return []
    logger = logging.getLogger("tensorboard")
    level = logger.level
    logger.setLevel(logging.WARNING)  # its event reader chats at INFO
    try:
        # size_guidance 0 keeps every scalar; the default samples down long runs.
        events = EventAccumulator(str(tb_dir), size_guidance={SCALARS: 0}).Reload()
    finally:
        logger.setLevel(level)
    present = events.Tags().get("scalars", [])
    # Lightning logs an "epoch" scalar at every step it logs metrics at: with it, a value's step names its
    # epoch. That drops the extra val/loss log_hyperparams writes at step 0 (which would shift every later
    # val/loss by one epoch under plain counting), and a resumed run's re-logged epochs replace the old ones.
    epoch_at = {e.step: int(e.value) for e in events.Scalars("epoch")} if "epoch" in present else {}
    rows: dict[int, dict] = {}
    for tag in CURVE_TAGS:
        if tag in present:
            # Without "epoch" (a plain SummaryWriter): logged once per epoch, so the i-th value is epoch i.
            for i, event in enumerate(events.Scalars(tag)):
                epoch = epoch_at.get(event.step) if epoch_at else i
                if epoch is not None:
                    rows.setdefault(epoch, {"epoch": epoch})[tag] = event.value
    return [rows[e] for e in sorted(rows)]
