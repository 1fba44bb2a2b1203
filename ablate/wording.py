"""How ``ablate`` says a count: "1 trial", "2 trials", never "1 trials"."""

from __future__ import annotations


def count(number: int, noun: str) -> str:
    """``number`` and ``noun``, the noun in the plural unless the number is 1."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
