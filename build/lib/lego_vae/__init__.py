"""lego-vae: variational autoencoders for Lego minifigure faces."""
