"""Tune hidden/latent size by Bayesian optimisation, then refit the best: python tune.py [key=value ...]."""

from lego_vae.tune import main

if __name__ == "__main__":
    main()
