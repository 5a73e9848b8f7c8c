"""Write small, valid Outlook MSG files for tests (MS-OXMSG over a compound file).

No library writes MSG from scratch, but extract-msg ships a compound-file writer
(`extract_msg.ole_writer.OleWriter`); this lays out the MSG streams on top of it:
subject, plain (and optionally HTML) body, sender, one To recipient, the submit time,
attachments by value and an embedded message (attach method 5).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime

from extract_msg.ole_writer import OleWriter

PT_LONG = 0x0003
PT_SYSTIME = 0x0040
PT_UNICODE = 0x001F
PT_BINARY = 0x0102
_READABLE_WRITABLE = 0x00000006
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


@dataclass
class MsgAttachment:
    file_name: str
    data: bytes = b""
    embedded: MsgSpec | None = None  # an attached message instead of bytes


@dataclass
class MsgSpec:
    subject: str
    body: str
    sender_name: str = "Ada Lovelace"
    sender_email: str = "ada@example.com"
    to_name: str = "Grace Hopper"
    to_email: str = "grace@example.com"
    sent: datetime | None = None
    html_body: bytes | None = None
    attachments: list[MsgAttachment] = field(default_factory=list)


class _Props:
    """One `__properties_version1.0` stream: a header, then 16-byte entries."""

    def __init__(self) -> None:
        self.entries: list[bytes] = []

    def fixed(self, prop_id: int, prop_type: int, value: bytes) -> None:
        tag = (prop_id << 16) | prop_type
        self.entries.append(struct.pack("<II", tag, _READABLE_WRITABLE) + value.ljust(8, b"\0"))

    def variable(self, prop_id: int, prop_type: int, size: int) -> None:
        tag = (prop_id << 16) | prop_type
        self.entries.append(struct.pack("<IIII", tag, _READABLE_WRITABLE, size, 0))

    def stream(self, header: bytes) -> bytes:
        return header + b"".join(self.entries)


def _put(writer: OleWriter, props: _Props, base: str, prop_id: int, value: str | bytes) -> None:
    if isinstance(value, str):
        raw, prop_type, size = value.encode("utf-16-le"), PT_UNICODE, len(value) * 2 + 2
    else:
        raw, prop_type, size = value, PT_BINARY, len(value)
    writer.addEntry(f"{base}__substg1.0_{prop_id:04X}{prop_type:04X}", raw)
    props.variable(prop_id, prop_type, size)


def _filetime(moment: datetime) -> bytes:
    ticks = int((moment - _FILETIME_EPOCH).total_seconds() * 10_000_000)
    return struct.pack("<Q", ticks)


def _message(writer: OleWriter, spec: MsgSpec, base: str, *, embedded: bool) -> None:
    props = _Props()
    _put(writer, props, base, 0x001A, "IPM.Note")
    _put(writer, props, base, 0x0037, spec.subject)
    _put(writer, props, base, 0x1000, spec.body)
    _put(writer, props, base, 0x0C1A, spec.sender_name)
    _put(writer, props, base, 0x5D01, spec.sender_email)
    _put(writer, props, base, 0x0E04, spec.to_name)
    if spec.html_body is not None:
        _put(writer, props, base, 0x1013, spec.html_body)
    props.fixed(0x0E07, PT_LONG, struct.pack("<I", 0x1))  # MSGFLAG_READ, sent
    if spec.sent is not None:
        props.fixed(0x0039, PT_SYSTIME, _filetime(spec.sent))

    recip = f"{base}__recip_version1.0_#00000000/"
    writer.addEntry(recip.rstrip("/"), storage=True)
    recip_props = _Props()
    _put(writer, recip_props, recip, 0x3001, spec.to_name)
    _put(writer, recip_props, recip, 0x39FE, spec.to_email)
    recip_props.fixed(0x0C15, PT_LONG, struct.pack("<I", 1))  # MAPI_TO
    writer.addEntry(f"{recip}__properties_version1.0", recip_props.stream(bytes(8)))

    for index, attachment in enumerate(spec.attachments):
        att = f"{base}__attach_version1.0_#{index:08X}/"
        writer.addEntry(att.rstrip("/"), storage=True)
        att_props = _Props()
        _put(writer, att_props, att, 0x3707, attachment.file_name)
        _put(writer, att_props, att, 0x3704, attachment.file_name[-12:])
        if attachment.embedded is None:
            _put(writer, att_props, att, 0x3701, attachment.data)
            att_props.fixed(0x3705, PT_LONG, struct.pack("<I", 1))  # ATTACH_BY_VALUE
        else:
            inner = f"{att}__substg1.0_3701000D/"
            writer.addEntry(inner.rstrip("/"), storage=True)
            _message(writer, attachment.embedded, inner, embedded=True)
            att_props.fixed(0x3705, PT_LONG, struct.pack("<I", 5))  # ATTACH_EMBEDDED_MSG
        att_props.fixed(0x0E21, PT_LONG, struct.pack("<I", index))  # PR_ATTACH_NUM
        writer.addEntry(f"{att}__properties_version1.0", att_props.stream(bytes(8)))

    counts = struct.pack("<IIII", 1, len(spec.attachments), 1, len(spec.attachments))
    header = bytes(8) + counts + (b"" if embedded else bytes(8))
    writer.addEntry(f"{base}__properties_version1.0", props.stream(header))


def build_msg(spec: MsgSpec) -> bytes:
    """The bytes of an MSG file holding `spec`."""
    writer = OleWriter()
    writer.addEntry("__nameid_version1.0", storage=True)
    for stream in ("00020102", "00030102", "00040102"):
        writer.addEntry(f"__nameid_version1.0/__substg1.0_{stream}", b"")
    _message(writer, spec, "", embedded=False)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
