"""Train a VAE, then evaluate it: `python train.py`, `lego-vae-train` or `python -m lego_vae.train` (conf/train.yaml)."""

from lego_vae.cli import RUN_DIR, command


def run(cfg, run_dir):
    """Fit, evaluate, pictures and report (lego_vae.pipeline.train_and_evaluate), imported once the config is checked."""
    from lego_vae.pipeline import train_and_evaluate

    return train_and_evaluate(cfg, run_dir)


main = command("train", run, RUN_DIR)

if __name__ == "__main__":
    main()
