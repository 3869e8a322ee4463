"""Real printed minifig heads from the LDraw library, rendered offline: the `data=ldraw` source.

designs (the shipped heads.npz) -> head (the bare head's geometry) -> render (photo-like images) -> labels
(the judge's classes, read from each design's description).
"""
