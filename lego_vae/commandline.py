"""Command lines the product prints for a user to paste: each word quoted for bash, each value for Hydra.

A path with a space, an ü, parentheses, a comma or a quote broke the printed `python train.py ...` line and the
`ckpt_path=...` hints twice over: bash split or expanded it, and Hydra's override grammar read a comma as a sweep,
parentheses as a function, and refused an ü unquoted.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from os import PathLike

# Characters a value may hold bare (a conservative subset of Hydra's unquoted grammar); anything else is quoted.
_BARE = re.compile(r"[A-Za-z0-9_/.\-+:@%]+")


def hydra_value(value: str | PathLike) -> str:
    """value as Hydra's override grammar must read it after `key=`: bare when it is plain, else single-quoted,
    with a quote, an interpolation `${` and the backslashes before them (or at the end) escaped."""
    text = str(value)
    if _BARE.fullmatch(text) and _reads_back(text):
        return text
    text = re.sub(r"(\\*)('|\$\{)", lambda m: m[1] * 2 + "\\" + m[2], text)
    return "'" + re.sub(r"(\\+)$", lambda m: m[1] * 2, text) + "'"


def _reads_back(text: str) -> bool:
    """Whether Hydra reads `key=text` as the string text (not null, a number, a bool)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_override(f"key={text}").value() == text
    except Exception:  # Hydra's grammar refused it bare
        return False


def shell_word(word: str) -> str:
    """word as bash must read it: bare when safe, else in double quotes (readable), else as shlex.quote gives it."""
    quoted = shlex.quote(word)
    if quoted == word:
        return word
    return f'"{word}"' if not re.search(r'["$`\\!]', word) else quoted


def override(key: str, value: str | PathLike) -> str:
    """`key=value` as one word to paste into bash, for Hydra to read value back unchanged."""
    return shell_word(f"{key}={hydra_value(value)}")


def command(words: Iterable[str]) -> str:
    """A command line of words (Hydra overrides as they were given, already in Hydra's grammar), each quoted for
    bash."""
    return " ".join(shell_word(w) for w in words)
