"""Token counts for an external server whose tokenizer is not known here.

Asking the server (`/tokenize` of llama-server and vLLM; Ollama has none) would put a
round trip per sentence into every prompt, so counts are estimates. `estimate_tokens`
counts words, digits, punctuation and CJK characters; on English text it is ~8% above
SmolLM2's tokenizer (itself above the larger vocabularies of Llama 3 or Qwen), so
document text is budgeted slightly short, and prompts are fitted to `NCTX_SHARE` of the
server's context as headroom. The prompt is counted as ChatML text (`render_chatml`):
the server applies its own template, whose markers cost about as much.
"""

from __future__ import annotations

import math
import re

NCTX_SHARE = 0.9  # prompts are fitted to this share of the server's context

_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_PIECES = re.compile(
    rf"<\|[A-Za-z_]+\|>|[{_CJK}]+|[^\W\d_{_CJK}]+|\d+|\n+|[ \t]+|[^\w\s]|_", re.UNICODE
)
_CJK_CHAR = re.compile(f"[{_CJK}]")


def estimate_tokens(text: str) -> int:
    """Tokens of `text` for an unknown tokenizer, erring high.

    A short ASCII word is one token and a long one one per 4 letters; a word with
    other letters one per 2.5; each digit, punctuation mark and newline run one; a CJK
    character 1.5; a `<|marker|>` of a chat template one.
    """
    n = 0
    for match in _PIECES.finditer(text):
        piece = match.group()
        first = piece[0]
        if first.isdigit():
            n += len(piece)
        elif first == "\n":
            n += 1
        elif first in " \t":
            n += 1 if len(piece) > 1 else 0  # a single space belongs to the next word
        elif first == "<" and len(piece) > 1:
            n += 1
        elif _CJK_CHAR.match(first):
            n += math.ceil(1.5 * len(piece))
        elif first.isalpha():
            if piece.isascii():
                n += 1 if len(piece) <= 6 else math.ceil(len(piece) / 4)
            else:
                n += math.ceil(len(piece) / 2.5)
        else:
            n += 1
    return n


def render_chatml(messages: list[dict[str, str]]) -> str:
    """The messages as ChatML text, for token budgeting only: the server applies its
    own chat template to the messages themselves."""
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return f"{turns}<|im_start|>assistant\n"
