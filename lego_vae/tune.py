"""Tune hidden/latent size by Bayesian optimisation, then refit the best: `python tune.py` or `lego-vae-tune` (conf/tune.yaml)."""

from lego_vae.cli import OVERRIDES, RUN_DIR, command
from lego_vae.tuning.study import tune

main = command("tune", tune, RUN_DIR, OVERRIDES)

if __name__ == "__main__":
    main()
