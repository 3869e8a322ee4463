"""Tune hidden/latent size by Bayesian optimisation, then refit the best: `python tune.py` or `lego-vae-tune` (conf/tune.yaml)."""

from lego_vae.cli import OVERRIDES, RUN_DIR, command


def run(cfg, study_dir, overrides):
    """The study, then the refit of its best (lego_vae.tuning.study.tune), imported once the config is checked."""
    from lego_vae.tuning.study import tune

    return tune(cfg, study_dir, overrides)


main = command("tune", run, RUN_DIR, OVERRIDES)

if __name__ == "__main__":
    main()
