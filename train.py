"""Train the VAE: python train.py [model.hidden=512 model.latent=32 ...] (keys: lego_vae/conf/train.yaml)."""

from lego_vae.train import main

if __name__ == "__main__":
    main()
