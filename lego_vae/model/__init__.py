"""The model, plain torch: the VAE and its nets, the losses, the fitted prior, finding and reading a checkpoint."""
