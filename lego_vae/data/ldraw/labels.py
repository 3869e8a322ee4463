"""Labels of the LDraw printed heads for the attribute judge, from each design's description and keywords.

LDraw names every printed head by what is printed ("Minifig Head with Grin, Dark Grey Beard and Eyebrows
Pattern", keywords "beard, moustache, ..."). mouth (one class): the first of MOUTH_WORDS that matches, else
"other" (teeth or an open mouth win over lips, lips over a closed mouth's shape); extras: each of EXTRA_WORDS
that matches; head: the render's head colour (HEAD_COLOURS of ldraw.render). A 2-sided head ("Smile / Frown
2-Sided") is labelled by its front, the side the renders show.
"""

from __future__ import annotations

import functools
import re

from lego_vae.data.ldraw.designs import load_designs
from lego_vae.data.ldraw.render import draw_params

MOUTH_WORDS: dict[str, str] = {
    "teeth": r"open mouth|open smil|teeth|tooth|scream|shout|tongue|tounge|wide open|grimace|scared|fang",
    "lips": r"\blips?\b|lipstick",
    "grin": r"\bgrin",
    "smirk": r"smirk|lopsided|crooked|sneer|lefty",
    "frown": r"frown|\bsad\b|scowl|annoyed|tense|angry|stern|grumpy|determined",
    "smile": r"smil",
}
EXTRA_WORDS: dict[str, str] = {
    "beard": r"beard|goatee|muttonchop",
    "stubble": r"stubble",
    "moustache": r"moustach|mustach",
    "glasses": r"(?<!sun)glasses|spectacles",
    "sunglasses": r"sunglasses|goggles|visor",
    "freckles": r"freckle",
    "headset": r"headset|microphone",
    "hair": r"\bhair",
    "mask": r"mask|balaclava",
    "scar": r"\bscar",
}
HEADS = ("yellow", "light_nougat", "nougat", "medium_nougat", "reddish_brown")
FACTORS: dict[str, tuple[str, ...]] = {
    "mouth": (*MOUTH_WORDS, "other"),
    "head": HEADS,
    "extras": tuple(EXTRA_WORDS),
}


def labels_of(description: str, keywords: str = "") -> dict:
    """{"mouth": class, "extras": [items]} of one design (the head's colour is a render's: design_labels)."""
    text = description.lower()
    if "2-sided" in text:  # without the back print ("a / b 2-Sided")
        text = re.sub(r"\s*/\s*[^,/]*?(?=\s*2-sided)", "", text)
    text = f"{text} {keywords.lower()}"
    mouth = next((name for name, pattern in MOUTH_WORDS.items() if re.search(pattern, text)), "other")
    extras = [name for name, pattern in EXTRA_WORDS.items() if re.search(pattern, text)]
    return {"mouth": mouth, "extras": extras}


@functools.cache
def _by_name() -> dict[str, dict]:
    d = load_designs()
    return {str(n): labels_of(str(text), str(k)) for n, text, k in zip(d.names, d.description, d.keywords)}


def design_labels(names: list[str], seed: int) -> list[dict]:
    """The judge's labels of renders named "[train-]<design>#<index>" of set `seed`: the design's mouth and
    extras, and the render's head colour."""
    out = []
    for name in names:
        design, index = name.removeprefix("train-").rsplit("#", 1)
        found = _by_name()[design]
        head = draw_params(int(index), seed)["head"]
        out.append({"mouth": found["mouth"], "head": head, "extras": list(found["extras"])})
    return out
