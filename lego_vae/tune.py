"""Tune hidden/latent size by Bayesian optimisation, then refit the best: `python tune.py` or `lego-vae-tune` (conf/tune.yaml)."""

from lego_vae.cli import OVERRIDES, RUN_DIR, command

main = command("tune", "lego_vae.tuning.study:tune", RUN_DIR, OVERRIDES)

if __name__ == "__main__":
    main()
