"""The model: the plain-torch VAE and its nets, the losses, the fitted prior, and loading a checkpoint."""
