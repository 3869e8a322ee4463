"""Labels of the LDraw printed heads for the attribute judge, read from each design's description and keywords.

LDraw names every printed head by what is printed ("Minifig Head with Grin, Dark Grey Beard and Eyebrows
Pattern", keywords "beard, moustache, ..."), so the judge's labels come from words, with these rules:

- mouth (one class): the first of MOUTH_WORDS whose pattern matches, else "other". Teeth or an open mouth win
  over lips, lips over the shape of a closed mouth. A 2-sided head ("Smile / Frown 2-Sided") is labelled by its
  first expression, the one printed on the front that the renders show.
- extras (0 or more): every item of EXTRA_WORDS whose pattern matches.
- head: the head's colour of the render (HEAD_COLOURS of lego_vae.data.ldraw.render), not of the design.

Words not printed on a design's front (a back print named after the slash) cannot be seen, hence the cut.
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


def front_text(description: str, keywords: str = "") -> str:
    """Lower-case description and keywords, without the back print of a 2-sided head ("a / b 2-Sided")."""
    text = description.lower()
    if "2-sided" in text:
        text = re.sub(r"\s*/\s*[^,/]*?(?=\s*2-sided)", "", text)
    return f"{text} {keywords.lower()}"


def labels_of(description: str, keywords: str = "") -> dict:
    """{"mouth": class, "extras": [items]} of one design (the head's colour is the render's: labels_for)."""
    text = front_text(description, keywords)
    mouth = next((name for name, pattern in MOUTH_WORDS.items() if re.search(pattern, text)), "other")
    return {"mouth": mouth, "extras": [name for name, pattern in EXTRA_WORDS.items() if re.search(pattern, text)]}


@functools.cache
def _by_name() -> dict[str, dict]:
    designs = load_designs()
    return {str(n): labels_of(str(d), str(k)) for n, d, k in zip(designs.names, designs.description, designs.keywords)}


def labels_for(design: str, head: str) -> dict:
    """The judge's labels of a render: its design's mouth and extras, and its head colour."""
    found = _by_name()[design]
    return {"mouth": found["mouth"], "head": head, "extras": list(found["extras"])}


def design_labels(names: list[str], seed: int) -> list[dict]:
    """The judge's labels of renders named "<design>#<index>" of set `seed` (lego_vae.data.ldraw_labels)."""
    heads = {}
    out = []
    for name in names:
        design, index = name.rsplit("#", 1)
        design = design.removeprefix("train-")
        i = int(index)
        if i not in heads:
            heads[i] = draw_params(i, seed)["head"]
        out.append(labels_for(design, heads[i]))
    return out
