"""Chat prompts as token ids in which only the template's own markers are special tokens.

Message contents (document text, the question, earlier turns, a client's messages) are
untrusted: they are tokenized as plain text, so a `<|im_end|>` inside them stays the
characters `<`, `|`, `im`... and cannot end the turn (or the `<documents>` block) it sits
in. Only the text the chat template itself writes (its turn markers, `bos_token`) is
parsed for special tokens.

How, for any template (the GGUF's `tokenizer.chat_template`: ChatML, Llama 3, Gemma...):
the template is rendered with the real contents and again with a random placeholder for
each content; the second rendering, split at the placeholders, gives the template's own
text between the contents. Joined back with the contents (or the contents trimmed, as
Llama 3 and Gemma templates trim them) it must equal the first rendering. The template's
text is then split at the vocabulary's special-token strings, as llama.cpp splits a whole
prompt, and each stretch between two special tokens (template text and contents alike)
is tokenized with `special=False`. Without a special-token string in the contents, the
ids are exactly what llama.cpp gives the whole rendered prompt with `special=True`.

A template that rewrites contents otherwise (e.g. drops a `<think>` part of an assistant
turn) fails that check; then each special-token string in a content (control and
user-defined ones alike: Qwen's `<think>` and `<tool_call>` are user-defined) gets a
zero-width space after its first character and the rendering is tokenized whole.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any, cast

log = logging.getLogger(__name__)

Message = dict[str, str]

ZERO_WIDTH_SPACE = "\u200b"
_C_SPACES = " \t\n\v\f\r"  # what llama.cpp's isspace() strips next to LSTRIP/RSTRIP tokens


@dataclass(frozen=True)
class SpecialToken:
    id: int
    control: bool  # a control token (not a user-defined or unknown one)
    lstrip: bool  # llama.cpp drops the whitespace before it
    rstrip: bool  # ... or after it


def special_tokens(vocab: Any) -> dict[str, SpecialToken]:
    """The tokens llama.cpp matches in text when `special=True` (control, user-defined and
    unknown ones), by their text."""
    import llama_cpp

    model = vocab._model
    found: dict[str, SpecialToken] = {}
    matched = (
        llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
        | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
    )
    for token in range(model.n_vocab()):
        attr = model.token_get_attr(token)
        if not attr & matched:
            continue
        try:
            text = llama_cpp.llama_vocab_get_text(model.vocab, token).decode("utf-8")
        except UnicodeDecodeError:
            continue  # never in a str
        if text and text not in found:
            found[text] = SpecialToken(
                token,
                control=bool(attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL),
                lstrip=bool(attr & llama_cpp.LLAMA_TOKEN_ATTR_LSTRIP),
                rstrip=bool(attr & llama_cpp.LLAMA_TOKEN_ATTR_RSTRIP),
            )
    return found


def _alternation(strings: list[str]) -> re.Pattern[str] | None:
    """A pattern matching any of `strings`, the longest first (None for none)."""
    if not strings:
        return None
    return re.compile("|".join(re.escape(s) for s in sorted(strings, key=len, reverse=True)))


class ChatPromptEncoder:
    """Renders messages with a Jinja chat template and tokenizes them with a llama.cpp
    vocabulary, the message contents as plain text."""

    def __init__(self, vocab: Any, template: str) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._vocab = vocab
        eos = vocab.detokenize([vocab.token_eos()], special=True).decode("utf-8", "replace")
        bos = vocab.detokenize([vocab.token_bos()], special=True).decode("utf-8", "replace")
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self._specials = special_tokens(vocab)
        self._special_text = _alternation(list(self._specials))
        self._neutralized_text = _alternation([text for text in self._specials if len(text) > 1])
        model = vocab._model
        self._prefix = [vocab.token_bos()] if model.add_bos_token() else []
        self._suffix = [vocab.token_eos()] if model.add_eos_token() else []
        self._warned = False

    def render(self, messages: list[Message]) -> str:
        """The prompt text of `messages`, ready for an answer."""
        prompt: str = self._formatter(messages=cast(Any, messages)).prompt
        return prompt

    def encode(self, messages: list[Message]) -> list[int]:
        """The prompt ids of `messages`: the template's markers as special tokens, the
        contents as plain text (a BOS first if the vocabulary adds one)."""
        pieces = self._pieces(messages)
        if pieces is None:
            return self._encode_neutralized(messages)
        ids = list(self._prefix)
        stretch: list[str] = []  # text since the last special token
        strip_start = False  # the last special token drops the whitespace after it
        for text, trusted in pieces:
            if not trusted or self._special_text is None:
                stretch.append(text)
                continue
            at = 0
            for match in self._special_text.finditer(text):
                special = self._specials[match.group()]
                stretch.append(text[at : match.start()])
                ids += self._plain("".join(stretch), strip_start, special.lstrip)
                ids.append(special.id)
                stretch, strip_start, at = [], special.rstrip, match.end()
            stretch.append(text[at:])
        ids += self._plain("".join(stretch), strip_start, False)
        return ids + self._suffix

    def _plain(self, text: str, strip_start: bool, strip_end: bool) -> list[int]:
        if strip_start:
            text = text.lstrip(_C_SPACES)
        if strip_end:
            text = text.rstrip(_C_SPACES)
        if not text:
            return []
        ids: list[int] = self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return ids

    def _pieces(self, messages: list[Message]) -> list[tuple[str, bool]] | None:
        """The rendered prompt as (text, written by the template) pieces; None if the
        template changes contents beyond trimming them."""
        rendered = self.render(messages)
        nonce = secrets.token_hex(8)
        placeholders = [
            {**m, "content": f"PLACEHOLDER{nonce}N{i}E"} for i, m in enumerate(messages)
        ]
        shaped = re.split(f"PLACEHOLDER{nonce}N([0-9]+)E", self.render(placeholders))
        for contents in (
            [m["content"] for m in messages],
            [m["content"].strip() for m in messages],
        ):
            pieces = [
                (piece, True) if k % 2 == 0 else (contents[int(piece)], False)
                for k, piece in enumerate(shaped)
            ]
            if "".join(text for text, _ in pieces) == rendered:
                return [p for p in pieces if p[0]]
        return None

    def _encode_neutralized(self, messages: list[Message]) -> list[int]:
        if not self._warned:
            self._warned = True
            log.warning(
                "the chat template rewrites message contents: special-token strings in "
                "them are neutralized (a zero-width space) instead of tokenized as text"
            )
        neutralized = [{**m, "content": self.neutralize(m["content"])} for m in messages]
        text = self.render(neutralized).encode("utf-8")
        ids: list[int] = self._vocab.tokenize(text, add_bos=True, special=True)
        return ids

    def neutralize(self, text: str) -> str:
        """`text` with a zero-width space inside each special-token string of the
        vocabulary, control or user-defined (the text reads the same; no tokenizer matches
        the token). One-character ones stay: a zero-width space cannot split them."""
        if self._neutralized_text is None:
            return text
        return self._neutralized_text.sub(
            lambda m: m.group()[0] + ZERO_WIDTH_SPACE + m.group()[1:], text
        )
