"""Training: the LightningModule, its callbacks, the Trainer, resuming, and train()."""
