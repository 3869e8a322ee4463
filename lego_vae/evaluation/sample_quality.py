"""Sample quality in the judge's feature space: attribute accuracy, FD/KD, and k-NN precision/recall.

judge_metrics returns, JSON-serialisable:
    attr_acc_real, attr_acc_recon  {factor: accuracy, "mean"} of the judge on the test faces and on their
                                   reconstructions; attr_confusion_recon: judge.confusion of the latter;
                                   all null, with attr_reason, without labels
    attr_chance, judge_ceiling     most-frequent-class rate and the judge's clean held-out accuracy
    fd_judge, kd_judge, kd_judge_std  {prior: value}: Fréchet and kernel distance, samples vs test faces
    precision, recall              {prior: value}: k-NN manifolds (Kynkäänniemi et al. 2019)
    fd_judge_reason, pr_reason     null, or why a value is null; judge_note: what the feature space is

FD/KD come from distances.image_set_distances with the judge as the feature extractor, precision/recall
from torch-fidelity. Read precision with recall and FD: 100 flat grey squares or noise images got precision
1.0 with the 64 px judge (recall 0, FD ~3,000 against ~130 for real faces), as faceless inputs map to one
point amid the real cloud.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_fidelity.metric_prc import prc_features_to_metric

from lego_vae.config.schema import TrainConfig
from lego_vae.data.labelled import factors_of
from lego_vae.evaluation.distances import image_set_distances
from lego_vae.evaluation.judge import AttributeJudge, attribute_accuracy, confusion, load_or_train_judge
from lego_vae.evaluation.metrics import reconstructions
from lego_vae.model.inference import evaluating, float_batches

NO_LABELS = "this data source has no factor labels (only rendered faces do: synthetic, ldraw)"


def judge_features(judge: AttributeJudge, images: Tensor, batch_size: int = 256) -> Tensor:
    """(N, num_features) judge embedding of uint8 images or floats in [0, 1], float32 on the CPU."""
    with evaluating(judge) as device:
        parts = [judge(x).cpu() for x in float_batches(images, batch_size, device)]
    return torch.cat(parts) if parts else torch.zeros(0, judge.num_features)


def precision_recall(real_feats: Tensor, fake_feats: Tensor, k: int = 3) -> dict[str, float]:
    """Kynkäänniemi et al. 2019: precision = share of fakes inside the real k-NN manifold, recall the reverse."""
    # A point is inside a set's manifold if it lies within the distance from some member of the set to
    # that member's k-th nearest neighbour in the set. torch-fidelity: features_1 generated, features_2 real.
    if min(len(real_feats), len(fake_feats)) <= k:
        raise ValueError(f"precision/recall with k={k} need more than {k} images per set, "
                         f"got {len(real_feats)} real and {len(fake_feats)} generated")
    out = prc_features_to_metric(fake_feats.double(), real_feats.double(), prc_neighborhood=k,
                                 prc_batch_size=10000, save_cpu_ram=False, verbose=False)
    return {"precision": float(out["precision"]), "recall": float(out["recall"])}


def judge_metrics(judge: AttributeJudge, test_images: Tensor, test_labels: list[dict] | None,
                  reconstructions: Tensor | None, samples_by_prior: dict[str, Tensor], k: int = 3,
                  seed: int = 0) -> dict:
    """Every judge metric of the module docstring in one JSON-serialisable dict."""
    settings = judge.meta.get("settings", {})
    out: dict = {
        "judge_ceiling": judge.meta.get("ceiling"),
        "attr_chance": judge.meta.get("chance"),
        "judge_note": ("fd_judge, kd_judge, precision and recall are distances in the feature space of an "
                       f"attribute classifier trained on {settings.get('source', 'synthetic')} faces (renderer seed "
                       f"{settings.get('seed')}); photo sources are read by the synthetic faces' judge"),
    }
    if test_labels is None:
        out.update(attr_acc_real=None, attr_acc_recon=None, attr_confusion_recon=None, attr_reason=NO_LABELS)
    else:
        if len(test_labels) != len(test_images):
            raise ValueError(f"{len(test_labels)} labels for {len(test_images)} test images")
        out["attr_acc_real"] = attribute_accuracy(judge, test_images, test_labels)
        recon = reconstructions is not None
        out["attr_acc_recon"] = attribute_accuracy(judge, reconstructions, test_labels) if recon else None
        out["attr_confusion_recon"] = confusion(judge, reconstructions, test_labels) if recon else None
        out["attr_reason"] = None if recon else "no reconstructions were given"
    real_feats = judge_features(judge, test_images)
    out.update({key: {} for key in ("fd_judge", "kd_judge", "kd_judge_std", "precision", "recall")})
    out["fd_judge_reason"] = out["pr_reason"] = None
    for prior, samples in samples_by_prior.items():
        dist = image_set_distances(test_images, samples, feature=judge, seed=seed)
        for key, name in (("fd_judge", "fid"), ("kd_judge", "kid"), ("kd_judge_std", "kid_std")):
            out[key][prior] = dist[name]
        if dist["fid_reason"] is not None:  # null distances always come with a reason
            out["fd_judge_reason"] = f"{prior}: {dist['fid_reason']}"
        try:
            pr = precision_recall(real_feats, judge_features(judge, samples), k=k)
        except ValueError as error:  # too few images for k neighbours (a tiny test split): null, with why
            pr, out["pr_reason"] = {"precision": None, "recall": None}, f"{prior}: {error}"
        out["precision"][prior], out["recall"][prior] = pr["precision"], pr["recall"]
    return out


def run_judge_metrics(vae: nn.Module, datamodule, config: TrainConfig, samples: dict[str, Tensor]) -> dict:
    """The judge's metrics of a trained run (eval.judge of its config): its reconstructions and samples
    ({"normal" and each prior's name: decoded_samples(vae, len(test), prior, seed=config.seed)})."""
    judge_cfg, data = config.eval.judge, config.data
    if not judge_cfg.enabled:
        return {}
    # A rendered source's own judge (its labels); photos are read by the synthetic faces' judge.
    source = data.source if factors_of(data.source) else "synthetic"
    judge, _ = load_or_train_judge(data.image_size, data.cache_dir, judge_cfg, source=source)
    test = datamodule.split_images("test")
    return judge_metrics(judge, test, datamodule.split_labels("test"), reconstructions(vae, test), samples,
                         k=judge_cfg.k, seed=config.seed)
