"""Evaluate a trained run again: `python -m lego_vae.evaluate checkpoint=RUN` or `lego-vae-evaluate` (conf/evaluate.yaml)."""

from lego_vae.cli import OVERRIDES, command


def run(cfg, overrides):
    """Evaluate the checkpoint again (lego_vae.evaluation.run.evaluate_checkpoint), imported once the config is checked."""
    from lego_vae.evaluation.run import evaluate_checkpoint

    return evaluate_checkpoint(cfg, overrides)


main = command("evaluate", run, OVERRIDES)

if __name__ == "__main__":
    main()
