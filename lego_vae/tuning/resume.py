"""A resumed study against the config it runs with now: each change is said in one line, and handled.

A study records what its trials depend on when it is created (an older one: its trials say). On resume:
- space.* low/high: it goes on in the new space, with the finished trials inside it (proposer.InSpace);
- space.*.log or .choices (which Optuna's storage keeps for a study), or the objective (the trial's budget,
  data.*, model.*, optim.*, seed, gradient clipping, less the space's keys) of a study with finished trials:
  refused, naming the way to a new study (val/loss under two objectives does not compare);
- sampler.kind or sampler.acquisition: the next trials are proposed by the new one;
- a larger study.n_initial: the design's Sobol or LHS sequence continues where it stopped, in its own kind.
"""

from __future__ import annotations

import re
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lego_vae.config import get_key, to_plain
from lego_vae.config.commands import TuneConfig
from lego_vae.config.space import config_key, distributions, normal_form
from lego_vae.errors import UserError
from lego_vae.tuning.config import DESIGN_LABEL, FINISHED
from lego_vae.tuning.design import design_points
from lego_vae.tuning.params import inside
from lego_vae.tuning.proposer import held_pairs

# A trial's objective: these sections, less what does not change its val/loss (where files are, compiling,
# memory layout, a fused optimizer update), and these keys.
OBJECTIVE_SECTIONS = ("data", "model", "optim")
NOT_OBJECTIVE = ("data.cache_dir", "data.root", "model.compile", "model.compile_mode", "model.channels_last",
                 "optim.fused")  # and the keys of the space, which the trials vary
OBJECTIVE_KEYS = ("seed", "trainer.gradient_clip_val", "trainer.gradient_clip_algorithm")
# A trial's budget: study.steps where set, else study.epochs; only that one is recorded (a change of unit too)
BUDGET_KEYS = ("study.epochs", "study.steps")


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in _flat(sub, f"{prefix}.{key}").items()}
    return {prefix: value}


def objective_settings(plain: TuneConfig) -> dict[str, Any]:
    """The settings of plain that define a trial's objective, as flat dotted keys (the space's keys left out)."""
    varied = {config_key(n) for n in distributions(plain.space)}
    flat = {k: v for section in OBJECTIVE_SECTIONS for k, v in _flat(to_plain(getattr(plain, section)), section).items()
            if k not in NOT_OBJECTIVE and k not in varied}
    flat.update({key: get_key(plain, key) for key in OBJECTIVE_KEYS if key not in varied})
    budget = "study.steps" if plain.study.steps is not None else "study.epochs"
    flat[budget] = get_key(plain, budget)
    return flat


def _budget(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: settings[k] for k in BUDGET_KEYS if k in settings}


def sampler_setting(plain: TuneConfig) -> str:
    """What proposes the trials: sampler.kind, with the acquisition of ours."""
    s = plain.sampler
    return f"{s.kind} ({s.acquisition})" if s.kind == "botorch" else s.kind


def design_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if str(t.user_attrs.get("proposed_by", "")).startswith(DESIGN_LABEL)]


def _pairs(trials: list[FrozenTrial], names: list[str]) -> set[tuple]:
    return held_pairs(trials, names) | {tuple(t.params[n] for n in names) for t in trials if set(names) <= t.params.keys()}


def _space_of_trials(trials: list[FrozenTrial], names: list[str]) -> dict | None:
    """The space of the latest trial with every parameter (a study created before the space was recorded)."""
    for t in reversed(trials):
        if set(names) <= t.distributions.keys():
            return normal_form({n: t.distributions[n] for n in names})
    return None


def _fmt(leaf: dict | None) -> str:
    if leaf is None:
        return "absent"
    if "choices" in leaf:
        return "{" + ", ".join(map(str, leaf["choices"])) + "}"
    return f"[{leaf['low']}, {leaf['high']}]" + (" log" if leaf["log"] else "")


def new_study(name: str) -> str:
    """The way out of a refused resume that every such line ends with."""
    return f"or start a new study with another study.name (e.g. study.name={name}-2)"


def _kept_by_optuna(study: optuna.Study, name: str, was: dict, now: dict) -> str | None:
    """The one-line refusal where this run changes what Optuna's storage keeps of a parameter for the whole study
    (its scale, its choices, its kind: every suggest would fail), else None."""
    again = new_study(study.study_name)
    if "choices" not in was and "choices" not in now:
        if was["log"] == now["log"]:
            return None
        return (f"space.{name}.log={str(now['log']).lower()}: study '{study.study_name}' has space.{name} on a "
                f"{'log' if was['log'] else 'linear'} scale, which Optuna keeps for the whole study: resume it "
                f"with space.{name}.log={str(was['log']).lower()}, {again}")
    if was == now:
        return None
    return (f"space.{name}: study '{study.study_name}' has space.{name} {_fmt(was)}, which Optuna keeps for the whole "
            f"study, and this run has {_fmt(now)}: resume it with the study's, {again}")


def check_objective(study: optuna.Study, plain: TuneConfig, trials: list[FrozenTrial]) -> None:
    """Refuse to resume a study with finished trials under another objective; record the current one."""
    now = objective_settings(plain)
    stored = study.user_attrs.get("objective")
    if stored is None:  # created before the objective was recorded: its complete trials say their epochs
        epochs = {t.user_attrs.get("epochs") for t in trials
                  if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs} - {None}
        stored = {"study.epochs": epochs.pop()} if len(epochs) == 1 else {}
    changed = [k for k in stored if k in now and k not in BUDGET_KEYS and stored[k] != now[k]]
    budget_changed = bool(_budget(stored)) and _budget(stored) != _budget(now)
    finished = [t for t in trials if t.state in FINISHED and "duplicate_of" not in t.user_attrs]
    if (changed or budget_changed) and finished:
        name = study.study_name
        was, wants = (", ".join(f"{k}={d[k]}" for k in [*(_budget(d) if budget_changed else ()), *changed])
                      for d in (stored, now))
        # A study of epochs resumed with study.steps set: the way back also unsets study.steps.
        back = f"study.steps=null, {was}" if "study.steps" in _budget(now).keys() - stored.keys() else was
        count = f"{len(finished)} finished trial{'s' * (len(finished) != 1)}"
        raise UserError(f"study '{name}' was run with {was} ({count}); this run has {wants}, and val/loss "
                        f"under the two does not compare: resume it with {back}, {new_study(name)}")
    if stored != now:
        study.set_user_attr("objective", now)


def space_note(study: optuna.Study, plain: TuneConfig, trials: list[FrozenTrial]) -> str | None:
    """One line if space.* changed since the study's last run (which then goes on in the new space)."""
    now = normal_form(plain.space)  # compared with, and stored as, the study's plain copy
    names = list(now)
    for n in names:  # each parameter as the study's trials hold it: any earlier space may have had it
        for t in (t for t in trials if n in t.distributions):
            if refusal := _kept_by_optuna(study, n, normal_form({n: t.distributions[n]})[n], now[n]):
                raise UserError(refusal)
    stored = study.user_attrs.get("space") or _space_of_trials(trials, names)
    if stored == now or stored is None:
        if study.user_attrs.get("space") != now:
            study.set_user_attr("space", now)
        return None
    for n in names:
        if stored.get(n) and (refusal := _kept_by_optuna(study, n, stored[n], now[n])):
            raise UserError(refusal)
    changes = "; ".join(f"space.{n} {_fmt(stored.get(n))} -> {_fmt(now.get(n))}"
                        for n in dict.fromkeys([*stored, *now]) if stored.get(n) != now.get(n))
    finished = [t for t in trials if t.state in FINISHED and "duplicate_of" not in t.user_attrs]
    within = sum(inside(t.params, distributions(now)) for t in finished)
    history = list(study.user_attrs.get("space_history") or [{"from_trial": 0, "space": stored}])
    history.append({"from_trial": len(trials), "space": now})
    study.set_user_attr("space_history", history)
    study.set_user_attr("space", now)
    return (f"study '{study.study_name}': search space changed since its last run ({changes}); it goes on in the new "
            f"space, every proposer modelling {' and '.join(names)} with the {within} of its {len(finished)} "
            "finished trials inside it")


def sampler_note(study: optuna.Study, plain: TuneConfig, trials: list[FrozenTrial]) -> str | None:
    """One line if sampler.kind (or our acquisition) changed since the study's last run."""
    now = sampler_setting(plain)
    stored = study.user_attrs.get("sampler")
    if stored is None:  # created before it was recorded: its latest trial says
        last = next((t for t in reversed(trials) if "sampler" in t.user_attrs), None)
        if last is not None:
            kind, acquisition = last.user_attrs["sampler"], last.user_attrs.get("acquisition")
            stored = f"{kind} ({acquisition})" if kind == "botorch" and acquisition else kind
    if stored == now:
        return None
    study.set_user_attr("sampler", now)
    if stored is None:
        return None
    return (f"study '{study.study_name}': sampler changed since its last run ({stored} -> {now}); the next trials are "
            f"proposed by {now} (each trial's proposed_by says which)")


def design_state(study: optuna.Study, plain: TuneConfig, trials: list[FrozenTrial]) -> dict:
    """The design's kind, seed and the row of its sequence where it stopped (replayed for an older study)."""
    state = study.user_attrs.get("design")
    if state is not None:
        return dict(state)
    names = list(distributions(plain.space))
    design = design_trials(trials)
    labels = [re.search(r"\((\w+)\)", str(t.user_attrs["proposed_by"])) for t in design]
    kind = next((m[1] for m in labels if m), plain.study.initial_design)
    space = study.user_attrs.get("space") or _space_of_trials(design, names) or plain.space
    have = len(_pairs(design, names))
    rows = design_points(space, kind, plain.study.seed, 0, have)[1] if have else 0
    return {"kind": kind, "seed": plain.study.seed, "rows": rows}


def grow_design(study: optuna.Study, plain: TuneConfig, trials: list[FrozenTrial]) -> list[str]:
    """Enqueue the design points a larger study.n_initial asks for, continuing the design's sequence."""
    names, s = list(distributions(plain.space)), plain.study
    state = design_state(study, plain, trials)
    notes = []
    if s.initial_design != state["kind"]:
        notes.append(f"study.initial_design={s.initial_design}: study '{study.study_name}' has a {state['kind']} "
                     f"design, and keeps it (another study.name starts a {s.initial_design} one)")
    have = len(_pairs(design_trials(trials), names))
    target = min(s.n_initial, s.n_trials)
    if target > have:
        start = state["rows"]
        points, state["rows"] = design_points(plain.space, state["kind"], state["seed"], start, target - have,
                                              _pairs(trials, names))
        for params in points:
            study.enqueue_trial(params, user_attrs={"proposed_by": f"{DESIGN_LABEL} ({state['kind']})"})
        notes.append(f"study.n_initial={s.n_initial}: {len(points)} more points of the study's {state['kind']} "
                     f"design, its sequence continued from row {start}")
    if study.user_attrs.get("design") != state:
        study.set_user_attr("design", state)
    return notes


def resume(study: optuna.Study, plain: TuneConfig) -> None:
    """Compare a resumed (or joined) study with this config: refuse another objective, say what else changed."""
    trials = study.get_trials(deepcopy=False)
    check_objective(study, plain, trials)
    notes = grow_design(study, plain, trials)  # before space_note: an older study's design replays its first space
    notes += [n for n in (space_note(study, plain, trials), sampler_note(study, plain, trials)) if n]
    for note in notes:
        print(note, flush=True)


def record(study: optuna.Study, plain: TuneConfig) -> None:
    """A new study's initial design, enqueued, and what its trials depend on, for the checks of its resumes.
    """
    grow_design(study, plain, [])
    study.set_user_attr("space", normal_form(plain.space))
    study.set_user_attr("objective", objective_settings(plain))
    study.set_user_attr("sampler", sampler_setting(plain))
