"""Evaluate a trained run again: `python -m lego_vae.evaluate checkpoint=RUN` or `lego-vae-evaluate` (conf/evaluate.yaml)."""

from lego_vae.cli import OVERRIDES, command

main = command("evaluate", "lego_vae.evaluation.run:evaluate_checkpoint", OVERRIDES)

if __name__ == "__main__":
    main()
