"""Train a VAE, then evaluate it: `python train.py`, `lego-vae-train` or `python -m lego_vae.train` (conf/train.yaml)."""

from lego_vae.cli import RUN_DIR, command

main = command("train", "lego_vae.pipeline:train_and_evaluate", RUN_DIR)

if __name__ == "__main__":
    main()
