"""Several runs read side by side by the attribute judge on fresh rendered faces, with a paired test.

    python -m bench.judge_fresh RUN [RUN ...] [--faces 2000] [--seed 777] [--out DIR]

Why: a run's metrics.json reads its reconstructions of the test split: 281 faces at the seed's 2,600, a
standard error of about 3 points on the mouth, so two recipes 5 points apart may still be noise. Here every
run reconstructs the same `--faces` fresh faces of renderer seed `--seed` (no run trains on them: training
faces are renderer seed data.seed, the judge's own are eval.judge.seed), and the same judge (each run's
eval.judge settings; the first run's, cached under --cache-dir) reads them.

- Each run: the judge's accuracy per factor and their mean, on the reconstructions, and on the originals
  (its ceiling on these faces).
- Each pair of runs: an exact McNemar test of the mouth on the same faces (McNemar 1947; the two-sided
  binomial test of the faces only one of the two reads right, scipy.stats.binomtest): a p-value for
  "the two recipes keep the mouth equally often". The faces both read right or both wrong carry no
  information about the difference, which is why a paired test needs far fewer faces than two proportions.

What it does not measure: the spread between training seeds of one recipe. Train a recipe again with
`seed=1` and read both runs here for that.

RUN is a run folder, a .ckpt or a study folder (as evaluate's checkpoint=). Every run must be of one rendered
source and one image size; anything else is refused in one line (exit status 2). Runs on `data=ldraw` are read on
`--faces` fresh renders (render seed `--seed`) of the first run's held-out test designs, by the LDraw heads' judge.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import binomtest

from bench import common
from lego_vae.data.labelled import factors_of, held_out_designs, render_labelled
from lego_vae.errors import UserError
from lego_vae.evaluation.judge import accuracy_of, attribute_accuracy, attribute_hits, load_or_train_judge
from lego_vae.evaluation.metrics import reconstructions
from lego_vae.model.checkpoints import checkpoint_file
from lego_vae.runs import load_model

NAME = "judge_fresh"
FACTOR = "mouth"  # the factor of the paired test: the one issue 16 is about


def mcnemar(first: np.ndarray, second: np.ndarray) -> dict:
    """Exact McNemar test of two boolean hit vectors on the same items: counts of each discordant kind and p."""
    only_first, only_second = int((first & ~second).sum()), int((second & ~first).sum())
    p = binomtest(only_first, only_first + only_second).pvalue if only_first + only_second else 1.0
    return {"only_first": only_first, "only_second": only_second, "p": float(p)}


def judge_runs(runs: list[str], faces: int, seed: int, cache_dir: str) -> dict:
    """The judge's accuracies of each run's reconstructions of `faces` fresh faces, and McNemar per pair."""
    models = {}
    for run in runs:
        vae, config, _ = load_model(run)
        if factors_of(config.data.source) is None:
            raise UserError(f"{run}: trained on data.source={config.data.source}; the judge reads rendered "
                            "faces only (synthetic, ldraw)")
        models[str(checkpoint_file(run))] = (vae, config)
    sources = {config.data.source for _, config in models.values()}
    if len(sources) != 1:
        raise UserError(f"the runs are of different data sources {sorted(sources)}: compare runs of one source")
    source = sources.pop()
    sizes = {config.data.image_size for _, config in models.values()}
    if len(sizes) != 1:
        raise UserError(f"the runs are of different image sizes {sorted(sizes)}: compare runs of one size")
    size = sizes.pop()
    judge, info = load_or_train_judge(size, cache_dir, next(iter(models.values()))[1].eval.judge, source=source)
    # ldraw: fresh renders of the first run's held-out (test) designs, which no training step saw.
    data = next(iter(models.values()))[1].data
    among = held_out_designs(data.seed, data.val_fraction, data.test_fraction) if source == "ldraw" else None
    pixels, labels = render_labelled(source, faces, size, seed, among)
    images = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))  # (N, 3, S, S) uint8
    rows, hits = [], {}
    for name, (vae, _) in models.items():
        run_hits = attribute_hits(judge, reconstructions(vae, images), labels)  # one pass of the judge per run
        rows.append({"run": name, **accuracy_of(run_hits)})
        hits[name] = run_hits[FACTOR].numpy().astype(bool)
    pairs = [{"first": a, "second": b, **mcnemar(hits[a], hits[b])} for a, b in itertools.combinations(hits, 2)]
    return {"ceiling": {"run": "(the originals)", **attribute_accuracy(judge, images, labels)},
            "runs": rows, "pairs": pairs, "judge": info.get("path")}


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run folders, .ckpt files or study folders")
    p.add_argument("--faces", type=int, default=2000, help="fresh faces to reconstruct (default 2000)")
    p.add_argument("--seed", type=int, default=777, help="renderer seed of the fresh faces (default 777)")
    args = p.parse_args(argv)
    if args.faces < 2:
        p.error("--faces must be at least 2")
    with common.limit_threads(common.threads_of(args)):
        try:
            result = judge_runs(args.runs, args.faces, args.seed, args.cache_dir)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
    settings = {"faces": args.faces, "seed": args.seed, "judge": result["judge"]}
    rows = [{k: (round(100 * v, 1) if isinstance(v, float) else v) for k, v in row.items()}
            for row in [result["ceiling"], *result["runs"]]]
    info = common.report(NAME, settings, rows, [], out=Path(args.out), extra={"pairs": result["pairs"]})
    pairs = [{**pair, "p": round(pair["p"], 4)} for pair in result["pairs"]]
    if pairs:
        print(f"{FACTOR}, paired on the same faces (exact McNemar):\n")
        print(common.markdown(pairs, ["first", "second", "only_first", "only_second", "p"]) + "\n")
    return info


if __name__ == "__main__":
    main()
