"""Tests of lego_vae/tuning."""
