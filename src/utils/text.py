"""Text normalisation shared by the caption tables (data) and the text encoders (models)."""

from __future__ import annotations


def normalize_text(text: str) -> str:
    """Lower-case and collapse white space, so "A  Seven" and "a seven" encode alike."""
    return " ".join(text.lower().split())
