"""A mail's MIME nesting, checked on the raw bytes before `email` parses them.

`email`'s parser recurses once per nesting level and checks every line against each
open boundary, so a hostile mail nested thousands deep costs O(lines x depth) and then
a RecursionError. This scan follows the same header and boundary rules in one pass and
refuses the mail as soon as its nesting passes `ingest.max_mime_depth`.
"""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesHeaderParser

from appliance.ingest.formats.base import Limits, ParseError


def depth_error(limits: Limits) -> ParseError:
    return ParseError(
        f"the mail's MIME parts nest deeper than ingest.max_mime_depth={limits.max_mime_depth}"
    )


_LINE_END = re.compile(rb"\r\n|\r|\n|\Z")
_HEADER_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")  # as email.feedparser
_DELIMITER = re.compile(rb"(?:\A|(?<=[\r\n]))--([^\r\n]*)")


def _next_line(data: bytes, pos: int) -> tuple[bytes, int]:
    end = _LINE_END.search(data, pos)
    return (data[pos:], len(data)) if end is None else (data[pos : end.start()], end.end())


def check_nesting(data: bytes, limits: Limits) -> None:
    """Refuse deep nesting before `email` parses it: its parser recurses once per level
    and checks every line against each open boundary (hostile nesting costs O(n*depth)).
    """
    stack: list[str | None] = []  # the open multiparts' boundaries; None: an inner mail
    pos, at_headers = 0, True
    while True:
        if at_headers:  # a header block, as email.feedparser delimits it
            if len(stack) > limits.max_mime_depth:
                raise depth_error(limits)
            start = pos
            while pos < len(data):
                line, after = _next_line(data, pos)
                if not line or not _HEADER_LINE.match(line):
                    pos = after if not line else pos
                    break
                pos = after
            headers = BytesHeaderParser(policy=policy.compat32).parsebytes(data[start:pos])
            kind = headers.get_content_type()
            if kind.startswith("multipart/") and (boundary := headers.get_boundary()):
                stack.append(boundary)
            elif kind.startswith("message/") and kind != "message/delivery-status":
                stack.append(None)
                continue  # the inner mail's headers follow
            at_headers = False
        if not stack:
            return
        for match in _DELIMITER.finditer(data, pos):
            name = match.group(1).rstrip(b" \t").decode("ascii", "surrogateescape")
            closing = name not in stack and name.endswith("--") and name[:-2] in stack
            if closing or name in stack:
                index = len(stack) - 1 - stack[::-1].index(name[:-2] if closing else name)
                del stack[index + (0 if closing else 1) :]
                pos, at_headers = _next_line(data, match.start())[1], not closing
                break
        else:
            return
