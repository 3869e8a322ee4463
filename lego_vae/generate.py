"""Faces from a checkpoint: `python -m lego_vae.generate checkpoint=RUN` or `lego-vae-generate` (conf/generate.yaml)."""

from lego_vae.cli import RUN_DIR, command


def run(cfg, out_dir):
    """Faces from the checkpoint (lego_vae.evaluation.generating.generate), imported once the config is checked."""
    from lego_vae.evaluation.generating import generate

    return generate(cfg, out_dir)


main = command("generate", run, RUN_DIR)

if __name__ == "__main__":
    main()
