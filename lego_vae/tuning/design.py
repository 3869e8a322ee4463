"""The space-filling initial design: a scrambled Sobol or Latin hypercube sequence, mapped into the search space."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from scipy.stats import qmc

from lego_vae.config.commands import TuneConfig
from lego_vae.config.space import distributions
from lego_vae.tuning.params import from_unit

DESIGN_BLOCK = 16  # unit points drawn at a time: a power of 2 keeps Sobol's balance; each LHS block is a Latin hypercube


def design_sequence(kind: str, dims: int, seed: int) -> Iterator[np.ndarray]:
    """The design's points in the unit cube, without end: the scrambled Sobol' sequence, or Latin hypercubes
    of DESIGN_BLOCK points; the same for the same kind, dimension and seed (a grown design continues it)."""
    if kind == "sobol":
        engine = qmc.Sobol(dims, scramble=True, seed=seed)
        m = int(math.log2(DESIGN_BLOCK))
        yield from engine.random_base2(m)
        while True:  # 2^m drawn so far: 2^m more keep the total a power of 2
            yield from engine.random_base2(m)
            m += 1
    else:
        engine = qmc.LatinHypercube(dims, seed=seed)
        while True:
            yield from engine.random(DESIGN_BLOCK)


def design_points(space: Any, kind: str, seed: int, start: int, count: int,
                  held: set[tuple] = frozenset()) -> tuple[list[dict], int]:
    """Up to `count` points of the design sequence from its row `start` on, mapped into `space`, none in
    `held` nor twice (rounding can merge two rows); and the row after the last one read."""
    dists = distributions(space)  # the config's, the study's stored one, or Optuna's distributions
    names = list(dists)
    points: list[dict] = []
    seen = set(held)
    row = start
    limit = start + 64 * count + 4096  # a small space can hold fewer new points than asked for
    for u in itertools.islice(design_sequence(kind, len(names), seed), start, limit if count > 0 else start):
        row += 1
        point = tuple(from_unit(float(value), dists[n]) for n, value in zip(names, u))
        if point not in seen:
            seen.add(point)
            points.append(dict(zip(names, point)))
            if len(points) == count:
                break
    return points, row


def initial_design(plain: TuneConfig) -> list[dict]:
    """The initial design: the first min(n_initial, n_trials) distinct points of design_sequence."""
    study = plain.study
    n = min(study.n_initial, study.n_trials)
    return design_points(plain.space, study.initial_design, study.seed, 0, n)[0]
