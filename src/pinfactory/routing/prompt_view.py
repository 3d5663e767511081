"""Which part of a prompt a learned router embeds.

A few-shot prompt is mostly its examples: RouterBench's ARC-Challenge and Winogrande
prompts are about 2,000 and 1,450 characters, of which the question is the last 200. The
full MiniLM reads only the first 256 word pieces (the shared examples), so every prompt of
a task gets nearly the same vector; the static embedding averages every token, so the
question is a sixth of it. The views:

- ``prompt``: the whole prompt (what the routers always did);
- ``question``: its last paragraph, the text after the last blank line;
- ``both``: the two embeddings side by side (task and question), each L2-normalised,
  the pair scaled back to unit length.
"""

from __future__ import annotations

import ast
from typing import Literal

View = Literal["prompt", "question", "both"]
VIEWS: tuple[View, ...] = ("prompt", "question", "both")


def last_turn(prompt: str) -> str:
    """The prompt's text; a prompt stored as a Python list of turns (RouterBench's
    ``"['...']"``, with its newlines escaped) is read as its last turn."""
    text = prompt.strip()
    if not (text.startswith(("['", '["')) and text.endswith(("']", '"]'))):
        return prompt
    try:
        turns = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return prompt
    if isinstance(turns, list) and turns and all(isinstance(t, str) for t in turns):
        return str(turns[-1])
    return prompt


def question(prompt: str) -> str:
    """The prompt's last non-empty paragraph (the whole prompt if it has one paragraph)."""
    text = last_turn(prompt).replace("\r\n", "\n")
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    return paragraphs[-1] if paragraphs else prompt
