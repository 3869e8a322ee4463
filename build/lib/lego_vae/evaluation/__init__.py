"""What a trained VAE is judged and shown by: metrics, pictures, the HTML report, generation from a checkpoint."""
