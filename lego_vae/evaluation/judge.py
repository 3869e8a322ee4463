"""An in-domain judge of face quality: a small attribute classifier trained on rendered faces.

Offline there are no Inception weights, so FID is null; the renderer knows every face's factors
(`lego_vae.data.labelled`), so a small conv net that reads them back from pixels is a judge trained anywhere:

    judge, info = load_or_train_judge(image_size, cache_dir, cfg.eval.judge)   # trained once, cached per settings
    judge(x)            # (B, 3, S, S) floats in [0, 1] -> (B, num_features): the feature space of fd/kd/PR
    judge.logits(x)     # {factor: (B, classes)}; "extras" is (B, extras items) presence logits
    info                # {"ceiling", "chance", "loaded", "seconds", "path", "settings"}

It trains on the render set eval.judge.seed, which no VAE sees (a large prime, far from any data.seed a user
would pick), and its ceiling is its accuracy on clean held-out faces of that set.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lego_vae.config.schema import JudgeConfig
from lego_vae.data.labelled import factors_of, render_labelled, render_version
from lego_vae.files import save_torch
from lego_vae.model.inference import evaluating, float_batches

JUDGE_VERSION = 1  # bump when the network or its training changes, so old caches are not reused
Factors = dict[str, tuple[str, ...]]  # factor -> its classes; "extras" lists 0+ items per face


def categorical(factors: Factors) -> tuple[str, ...]:
    """The factors with one class per face (all but extras)."""
    return tuple(f for f in factors if f != "extras")


class AttributeJudge(nn.Module):
    """Stride-2 conv stages down to a 4x4 grid, each with a 3x3 conv -> `num_features` -> a linear head per factor."""

    def __init__(self, image_size: int, width: int = 16, num_features: int = 128, factors: Factors | None = None) -> None:
        super().__init__()
        self.image_size, self.width, self.num_features = image_size, width, num_features
        self.factors: Factors = factors or factors_of("synthetic")  # the labels it reads (lego_vae.data.labelled)
        stages = max(1, int(math.log2(image_size / 4)))  # 64 px: 4 stages of stride 2 -> 4x4
        layers: list[nn.Module] = []
        channels = 3
        for i in range(stages):
            out = width * 2 ** min(i, 3)
            # Downsample first: the full-resolution layer is the costliest and the printed features are
            # several pixels wide; the 3x3 conv after it sees them at half size, where compute is cheap.
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU(),
                       nn.Conv2d(out, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        # A fixed 4x4 grid keeps where things are (brows above eyes above mouth) for any image size.
        layers += [nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(channels * 16, num_features), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({f: nn.Linear(num_features, len(c)) for f, c in self.factors.items()})
        self.meta: dict = {}  # ceiling, chance and settings, filled by load_or_train_judge

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, S, S) floats in [0, 1] -> (B, num_features) embedding: a torchmetrics FID/KID `feature`."""
        return self.body((x - 0.5) / 0.25)

    features = forward

    def logits(self, x: Tensor) -> dict[str, Tensor]:
        """Per-factor logits: (B, classes) for each categorical factor, (B, extras items) for extras."""
        h = self(x)
        return {f: head(h) for f, head in self.heads.items()}


def encode_labels(labels: list[dict], factors: Factors) -> dict[str, Tensor]:
    """Renderer labels -> class indices (N,) per categorical factor and a multi-hot (N, extras items) for extras."""
    extras = factors["extras"]
    out = {f: torch.tensor([factors[f].index(lab[f]) for lab in labels], dtype=torch.long) for f in categorical(factors)}
    out["extras"] = torch.tensor([[float(e in lab["extras"]) for e in extras] for lab in labels]).reshape(-1, len(extras))
    return out


def _predict_indices(judge: AttributeJudge, images: Tensor, batch_size: int = 256) -> dict[str, Tensor]:
    """Predicted class index per categorical factor and a 0/1 extras matrix, for every image."""
    parts: dict[str, list[Tensor]] = {f: [] for f in judge.factors}
    with evaluating(judge) as device:
        for x in float_batches(images, batch_size, device):
            for f, z in judge.logits(x).items():
                parts[f].append((z > 0).float().cpu() if f == "extras" else z.argmax(1).cpu())
    return {f: torch.cat(p) for f, p in parts.items()}


def predict(judge: AttributeJudge, images: Tensor) -> list[dict]:
    """The judge's reading of each image, in the renderer's label format (factor -> name, extras -> list)."""
    pred, factors = _predict_indices(judge, images), judge.factors
    return [{**{f: factors[f][int(pred[f][i])] for f in categorical(factors)},
             "extras": [e for e, on in zip(factors["extras"], pred["extras"][i].tolist()) if on]}
            for i in range(len(images))]


def _with_mean(per_factor: dict[str, float]) -> dict[str, float]:
    return {**per_factor, "mean": float(np.mean(list(per_factor.values())))}


def attribute_hits(judge: AttributeJudge, images: Tensor, labels: list[dict]) -> dict[str, Tensor]:
    """Per factor, (N,) 1.0 where the judge reads image i's factor right (extras: the whole set), else 0.0."""
    pred, target = _predict_indices(judge, images), encode_labels(labels, judge.factors)
    # Extras are 0+ items: a per-item mean would sit near 90 % by chance alone (most items are rare),
    # hiding the errors that matter, so a face's extras count as right only if every item is.
    return {f: (pred[f] == target[f]).all(1).float() if f == "extras" else (pred[f] == target[f]).float()
            for f in pred}


def accuracy_of(hits: dict[str, Tensor]) -> dict[str, float]:
    """attribute_hits as fractions read right, per factor and their mean."""
    return _with_mean({f: float(h.mean()) for f, h in hits.items()})


def attribute_accuracy(judge: AttributeJudge, images: Tensor, labels: list[dict]) -> dict[str, float]:
    """Fraction of images whose factor the judge reads right, per factor and their mean."""
    return accuracy_of(attribute_hits(judge, images, labels))


def confusion(judge: AttributeJudge, images: Tensor, labels: list[dict]) -> dict[str, dict]:
    """Per categorical factor (not extras), how the judge reads images against their true labels: {factor:
    {"classes": [names], "counts": K x K list, counts[i][j] = images of true class i read as class j}}."""
    pred, target = _predict_indices(judge, images), encode_labels(labels, judge.factors)
    out = {}
    for f in categorical(judge.factors):
        k = len(judge.factors[f])
        counts = torch.bincount(target[f] * k + pred[f], minlength=k * k).view(k, k)
        out[f] = {"classes": list(judge.factors[f]), "counts": counts.tolist()}
    return out


def confusion_losses(table: dict[str, dict], min_share: float = 0.5) -> list[str]:
    """Lines such as "mouth: lipstick -> smile 80 %", largest first: each true class whose most frequent
    reading is another class, taking at least min_share of its faces."""
    found = []
    for factor, entry in table.items():
        for i, row in enumerate(entry["counts"]):
            total = sum(row)
            if not total:
                continue
            j = max(range(len(row)), key=row.__getitem__)
            if j != i and row[j] / total >= min_share:
                found.append((row[j] / total, f"{factor}: {entry['classes'][i]} -> {entry['classes'][j]} "
                                              f"{row[j] / total:.0%} (of {total})"))
    return [line for _, line in sorted(found, key=lambda item: -item[0])]


def chance_accuracy(labels: list[dict], factors: Factors | None = None) -> dict[str, float]:
    """Most-frequent-class rate per factor (extras: the most frequent whole set) and their mean."""
    rates = {}
    for f in factors or factors_of("synthetic"):
        values = Counter(tuple(sorted(lab[f])) if f == "extras" else lab[f] for lab in labels)
        rates[f] = values.most_common(1)[0][1] / len(labels)
    return _with_mean(rates)


def _loss(logits: dict[str, Tensor], target: dict[str, Tensor]) -> Tensor:
    """Sum over factors of cross-entropy (categorical) and binary cross-entropy per extras item."""
    return sum(F.binary_cross_entropy_with_logits(z, target[f]) * z.shape[1] if f == "extras"
               else F.cross_entropy(z, target[f]) for f, z in logits.items())


def train_judge(images: Tensor, labels: list[dict], cfg: JudgeConfig, factors: Factors) -> AttributeJudge:
    """Fit a judge (cfg: eval.judge) on uint8 faces (N, 3, S, S) and their labels; Adam, one-cycle lr."""
    target = encode_labels(labels, factors)
    with torch.random.fork_rng(devices=[]):  # deterministic, without touching the caller's RNG
        torch.manual_seed(cfg.seed)
        judge = AttributeJudge(images.shape[-1], cfg.width, cfg.num_features, factors)
        steps = cfg.epochs * -(-len(images) // cfg.batch_size)
        opt = torch.optim.Adam(judge.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.2)
        judge.train()
        for _ in range(cfg.epochs):
            for idx in torch.randperm(len(images)).split(cfg.batch_size):
                x = images[idx].float() / 255
                # Mirroring keeps every label (smirks, winks and patches are drawn on either side at random);
                # pose jitter comes from the renderer itself.
                flip = torch.rand(len(idx)) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
                loss = _loss(judge.logits(x), {f: t[idx] for f, t in target.items()})
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    return judge.eval()


def load_or_train_judge(image_size: int, cache_dir: str | Path, judge_cfg: JudgeConfig,
                        source: str = "synthetic") -> tuple[AttributeJudge, dict]:
    """The judge of a rendered source's labels for this image size from `cache_dir`, or trained on the render set
    judge_cfg.seed (a run's eval.judge: its sizes and schedule) and cached: (judge, info). Raises KeyError for a
    source without labels (lego_vae.data.labelled)."""
    settings = {"image_size": image_size, **asdict(judge_cfg)}
    del settings["enabled"], settings["k"]  # how the judge is used, not what it is
    if source != "synthetic":  # absent for synthetic faces: their judges cached before ldraw existed stay valid
        settings.update(source=source, renders=render_version(source))
    factors = factors_of(source)
    if factors is None:
        raise KeyError(f"{source}: a photo source has no labels for the judge")
    key = json.dumps({"version": JUDGE_VERSION, **settings}, sort_keys=True, allow_nan=False)
    path = Path(cache_dir) / f"judge-{image_size}px-{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"
    if path.exists():
        try:
            saved = torch.load(path, weights_only=True)
            if saved["meta"]["settings"] != settings:
                raise ValueError("settings differ")
            judge = AttributeJudge(image_size, judge_cfg.width, judge_cfg.num_features, factors)
            judge.load_state_dict(saved["state_dict"])
            judge.meta = saved["meta"]
            return judge.eval(), {**judge.meta, "loaded": True, "path": str(path)}
        except Exception as error:  # truncated, garbage, or another format: retrain, say so once
            warnings.warn(f"judge cache {path} is unreadable ({type(error).__name__}); training the judge again",
                          stacklevel=2)
    start, n = time.perf_counter(), judge_cfg.num_train
    pixels, labels = render_labelled(source, n + judge_cfg.num_holdout, size=image_size, seed=judge_cfg.seed)
    images = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))  # (N, 3, S, S) uint8
    judge = train_judge(images[:n], labels[:n], judge_cfg, factors)
    held_images, held_labels = images[n:], labels[n:]
    judge.meta = {"settings": settings, "seconds": time.perf_counter() - start,
                  "ceiling": attribute_accuracy(judge, held_images, held_labels),
                  "chance": chance_accuracy(held_labels, factors)}
    path.parent.mkdir(parents=True, exist_ok=True)
    # Whole or not at all (lego_vae.files): a killed run or a full disk never leaves a half-written judge behind.
    save_torch({"state_dict": judge.state_dict(), "meta": judge.meta}, path)
    return judge, {**judge.meta, "loaded": False, "path": str(path)}
