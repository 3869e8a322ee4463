"""The face explorer: a local web app to generate, morph, steer and reconstruct faces from a checkpoint.

`python -m lego_vae.explore checkpoint=RUN` (conf/explore.yaml); needs the `app` extra (gradio).
"""
