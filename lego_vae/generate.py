"""Faces from a checkpoint: `python -m lego_vae.generate checkpoint=RUN` or `lego-vae-generate` (conf/generate.yaml)."""

from lego_vae.cli import RUN_DIR, command

main = command("generate", "lego_vae.evaluation.generating:generate", RUN_DIR)

if __name__ == "__main__":
    main()
