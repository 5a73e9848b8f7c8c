"""Chat-template markers neutralized in text sent to an external generation server.

An OpenAI-compatible server renders the `messages` with its own chat template and
tokenizes the whole text with special-token parsing (llama.cpp's server with
`parse_special`, vLLM and Ollama alike): a `<|im_end|>` inside a document would become
the real control token there. The appliance cannot tokenize for that server, nor does it
know its vocabulary, so each marker of the known model families in a content gets a
zero-width space after its first character: it reads the same, and no tokenizer matches
it as its special token.
"""

from __future__ import annotations

import re

ZERO_WIDTH_SPACE = "\u200b"

_MARKERS = re.compile(
    r"<\|[^<>|\s]{1,64}\|>"  # ChatML, Llama 3, Phi, Granite, Command R, gpt-oss: <|im_start|>
    "|<\uff5c[^<>\uff5c]{1,64}\uff5c>"  # DeepSeek: <｜User｜>, <｜end▁of▁sentence｜>
    r"|</?(?:s|bos|eos|pad|unk|mask|start_of_turn|end_of_turn|think|tool_call|tool_response)>"
    r"|\[/?(?:INST|SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS|TOOL_CONTENT)\]"
    r"|<</?SYS>>"  # Llama 2
)


def neutralize_markers(text: str) -> str:
    """`text` with a zero-width space inside each chat-template marker."""
    return _MARKERS.sub(lambda m: m.group()[0] + ZERO_WIDTH_SPACE + m.group()[1:], text)


def outgoing_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The messages as an external server is sent them: every content neutralized (the
    roles are the appliance's own)."""
    return [{**m, "content": neutralize_markers(m["content"])} for m in messages]
