"""What kind of answer a question asks for, and whether a sentence holds one (pure).

A question that asks *which* parameter, option, tool, file or function, or *how long*,
*how many* or what the default is, is answered by a sentence that names something the
question does not: an identifier (`max_locks_per_transaction`, `--globals-only`,
`setval()`, `AllowOverride`) or a number. MiniLM ranks the sentences that restate the
question highest; this bonus lifts the ones that answer it. Measured with
`bench/evidence.py --dump` and the same hits ranked offline (hit@1 of the first evidence,
3 passages, 12 candidates): PostgreSQL 0.31 -> 0.33, Apache 0.34 -> 0.36, hit@5 unchanged;
from 5 passages and 24 candidates: PostgreSQL 0.33 -> 0.38 (hit@5 0.67 -> 0.78).
"""

from __future__ import annotations

import re

_ASKS_FOR_A_NAME = re.compile(
    r"\b(which|what)\b.*\b(parameter|option|setting|tool|utility|program|command|function|"
    r"file|directive|module|type|flag|variable|clause|keyword)s?\b"
    r"|\bhow (long|many|much|large|big|often)\b|\bdefault\b",
    re.IGNORECASE,
)
# An option (-x, --name), a name with an underscore, a call (), an acronym, a dotted name
# (file.conf), a number.
_NAME = re.compile(
    r"--?[a-z][\w-]*|\b\w*_\w+\b|\b\w+\(\)|\b[A-Z]{2,}\b|\b[a-z]+\.[a-z]+\b"
    r"|\d"
)
BONUS = 0.1  # added to the cosine (the spread of the best candidates is ~0.1-0.3)


def asks_for_a_name(question: str) -> bool:
    return bool(_ASKS_FOR_A_NAME.search(question))


def names_something_new(sentence: str, question: str) -> bool:
    """Whether `sentence` names an identifier or number the question does not hold."""
    asked = question.lower()
    return any(name.lower() not in asked for name in _NAME.findall(sentence))


def answer_type_bonus(question: str, sentences: list[str]) -> list[float]:
    """`BONUS` for each sentence that names something new, when the question asks for a
    name or a number; else 0 for all."""
    if not asks_for_a_name(question):
        return [0.0] * len(sentences)
    return [BONUS if names_something_new(s, question) else 0.0 for s in sentences]
