"""Mail: EML (RFC 5322 / MIME) and Outlook MSG.

One section per mail: a short header block, then the body (plain text preferred, else
the HTML part's text). Attachments, attached mails included, are written into
`out_dir` to be ingested as documents of their own; the caller links them to the mail.
"""

from __future__ import annotations

import io
import mimetypes
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Any

from appliance.domain.types import Section
from appliance.ingest.formats.base import Limits, MiB, ParsedDocument, ParseError, clean_text
from appliance.ingest.formats.html import parse_html
from appliance.ingest.formats.mime_nesting import check_nesting
from appliance.ingest.formats.mime_nesting import depth_error as _depth_error

EML_TYPE = "message/rfc822"
MSG_TYPE = "application/vnd.ms-outlook"
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f<>:"|?*]+')
_MAX_NAME_BYTES = 180


def _too_many(limits: Limits) -> ParseError:
    n = limits.max_attachments
    return ParseError(f"the mail carries more than ingest.max_attachments={n} attachments")


def safe_name(name: str, fallback: str = "attachment") -> str:
    """A file name without directories, control or reserved characters, kept short."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("_", name).strip().lstrip(".").strip()
    if not name:
        name = fallback
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 16:
        stem, dot, ext = name, "", ""
    while len((stem + dot + ext).encode()) > _MAX_NAME_BYTES and stem:
        stem = stem[:-1]
    return (stem.rstrip() or fallback) + dot + ext


@dataclass
class _Mail:
    """What both formats yield, before it is written out."""

    subject: str = ""
    sender: str = ""
    to: str = ""
    date: str = ""  # ISO 8601 when it could be read, else as written
    author: str = ""
    body: str = ""
    attachments: list[tuple[str, bytes]] = field(default_factory=list)
    attachment_bytes: int = 0

    def attach(self, name: str, data: bytes, limits: Limits) -> None:
        if len(self.attachments) >= limits.max_attachments:
            raise _too_many(limits)
        self.attachment_bytes += len(data)
        if self.attachment_bytes > limits.max_unzipped_mb * MiB:
            raise ParseError(
                f"the mail's attachments hold more than "
                f"ingest.max_unzipped_mb={limits.max_unzipped_mb} MiB"
            )
        self.attachments.append((name, data))


def _iso_date(raw: str) -> str:
    try:
        return parsedate_to_datetime(raw).isoformat()
    except (TypeError, ValueError, IndexError, OverflowError):
        return raw.strip()


def _write_attachments(mail: _Mail, out_dir: Path | None) -> list[str]:
    if out_dir is None:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for name, data in mail.attachments:
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        candidate, n = name, 1
        while True:
            try:
                with (out_dir / candidate).open("xb") as fh:
                    fh.write(data)
                break
            except FileExistsError:
                n += 1
                candidate = f"{stem} ({n}){dot}{ext}"
        written.append(candidate)
    return written


def _document(mail: _Mail, content_type: str, out_dir: Path | None) -> ParsedDocument:
    subject = " ".join(mail.subject.split())
    fields = {"From": mail.sender, "To": mail.to, "Date": mail.date, "Subject": subject}
    header = "\n".join(f"{label}: {value}" for label, value in fields.items() if value)
    text = clean_text(header + "\n\n" + mail.body)
    location = f"mail: {subject}" if subject else "mail"
    meta = {"title": subject, "from": mail.sender, "to": mail.to, "date": mail.date}
    meta |= {"author": mail.author, "created": mail.date}
    sections = [Section(text, heading=subject or None, location=location)] if text else []
    metadata = {key: value for key, value in meta.items() if value}
    return ParsedDocument(
        content_type, sections, metadata=metadata, attachments=_write_attachments(mail, out_dir)
    )


def _html_text(html: bytes) -> str:
    parsed = parse_html(html.replace(b"\x00", b""), main_content=False)
    return "\n\n".join(f"{s.heading}\n{s.text}" if s.heading else s.text for s in parsed.sections)


# --- EML ---------------------------------------------------------------------------------


def _header(msg: Message, name: str) -> str:
    """A header's decoded value; the raw one when the parser chokes on it."""
    try:
        value = msg.get(name)
        return "" if value is None else str(value)
    except Exception:  # email's header parser has raised on hostile input before
        for key, raw in msg.raw_items():
            if key.lower() == name.lower():
                return str(raw)
        return ""


def _addresses(value: str) -> list[tuple[str, str]]:
    return [(n, a) for n, a in getaddresses([value]) if n or a]


def _text_of(part: Message) -> str:
    try:
        return str(part.get_content()) if isinstance(part, EmailMessage) else ""
    except Exception:  # an unknown charset, a broken transfer encoding
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def _walk_eml(
    part: Message, depth: int, limits: Limits, mail: _Mail, bodies: dict[str, list[str]]
) -> None:
    """Depth-first over the MIME tree; `depth` counts the containers above `part`."""
    if depth > limits.max_mime_depth:
        raise _depth_error(limits)
    content_type = part.get_content_type()
    disposition = (part.get_content_disposition() or "").lower()
    has_name = part.get_param("filename", header="content-disposition") is not None or (
        part.get_param("name") is not None and not part.is_multipart()
    )
    if content_type.startswith("message/"):
        inner = part.get_payload()
        inner_msgs = [m for m in inner if isinstance(m, Message)] if isinstance(inner, list) else []
        for inner_msg in inner_msgs:
            _check_depth(inner_msg, depth + 1, limits)
        if content_type in ("message/rfc822", "message/global") and inner_msgs:
            _attach_mail(part, inner_msgs[0], limits, mail)
        return
    if part.is_multipart():
        children = part.get_payload()
        for child in children if isinstance(children, list) else []:
            if isinstance(child, Message):
                _walk_eml(child, depth + 1, limits, mail, bodies)
        return
    if disposition == "attachment" or has_name:
        ext = mimetypes.guess_extension(content_type) or ""
        fallback = f"attachment-{len(mail.attachments) + 1}{ext}"
        data = part.get_payload(decode=True)
        if isinstance(data, bytes):
            mail.attach(safe_name(part.get_filename() or "", fallback), data, limits)
        return
    if content_type in ("text/plain", "text/html"):
        bodies[content_type].append(_text_of(part))


def _attach_mail(part: Message, inner: Message, limits: Limits, mail: _Mail) -> None:
    """An attached mail, written out as .eml (named after its file name or subject)."""
    filename = part.get_filename()
    subject = _header(inner, "subject").strip()
    fallback = f"message-{len(mail.attachments) + 1}"
    name = safe_name(filename or subject or fallback, fallback)
    if not name.lower().endswith(".eml"):
        name += ".eml"
    try:
        raw = inner.as_bytes(policy=policy.default)
    except Exception:  # a header policy.default cannot refold: write it as it came
        raw = inner.as_bytes(policy=policy.compat32)
    mail.attach(name, raw, limits)


def _check_depth(part: Message, depth: int, limits: Limits) -> None:
    """Check an attached mail's nesting without reading its body or attachments."""
    if depth > limits.max_mime_depth:
        raise _depth_error(limits)
    payload = part.get_payload()
    if isinstance(payload, list):
        for child in payload:
            if isinstance(child, Message):
                _check_depth(child, depth + 1, limits)


def parse_eml(data: bytes, limits: Limits, out_dir: Path | None) -> ParsedDocument:
    """A mail saved as .eml: headers as metadata, the body, attachments written out."""
    check_nesting(data, limits)
    try:
        msg = BytesParser(policy=policy.default).parsebytes(data)
        mail = _Mail()
        bodies: dict[str, list[str]] = {"text/plain": [], "text/html": []}
        _walk_eml(msg, 0, limits, mail, bodies)
    except RecursionError:  # the parser itself recurses once per nesting level
        raise _depth_error(limits) from None
    mail.subject = _header(msg, "subject")
    mail.sender = _header(msg, "from")
    mail.to = ", ".join(
        f"{name} <{addr}>" if name else addr for name, addr in _addresses(_header(msg, "to"))
    )
    date = _header(msg, "date")
    mail.date = _iso_date(date) if date.strip() else ""
    senders = _addresses(mail.sender)
    mail.author = (senders[0][0] or senders[0][1]) if senders else ""
    plain = [t for t in bodies["text/plain"] if t.strip()]
    if plain:
        mail.body = "\n\n".join(plain)
    else:
        html = [t.encode("utf-8", "surrogateescape") for t in bodies["text/html"] if t.strip()]
        mail.body = "\n\n".join(_html_text(t) for t in html)
    return _document(mail, EML_TYPE, out_dir)


# --- MSG ---------------------------------------------------------------------------------


def _check_msg_depth(message: Any, depth: int, limits: Limits) -> None:
    """Embedded mails (opened lazily) count two levels each, as attachment and mail."""
    from extract_msg.enums import AttachmentType

    for attachment in message.attachments:
        if attachment.type == AttachmentType.MSG:
            if depth + 2 > limits.max_mime_depth:
                raise _depth_error(limits)
            _check_msg_depth(attachment.data, depth + 2, limits)


def _msg_attachments(message: Any, limits: Limits, mail: _Mail) -> None:
    from extract_msg.enums import AttachmentType

    attachments = list(message.attachments)
    if len(attachments) > limits.max_attachments:
        raise _too_many(limits)
    for index, attachment in enumerate(attachments, start=1):
        name = attachment.getFilename() or ""
        if attachment.type == AttachmentType.DATA and isinstance(attachment.data, bytes):
            mail.attach(safe_name(name, f"attachment-{index}"), attachment.data, limits)
        elif attachment.type == AttachmentType.MSG:
            embedded = attachment.data
            name = safe_name(name or f"{embedded.subject or 'message'}", f"message-{index}")
            if not name.lower().endswith(".msg"):
                name += ".msg"
            mail.attach(name, embedded.exportBytes(), limits)


def parse_msg(data: bytes, limits: Limits, out_dir: Path | None) -> ParsedDocument:
    """An Outlook .msg mail: headers as metadata, the body, attachments written out."""
    import extract_msg
    from extract_msg.enums import ErrorBehavior as Err

    lenient = Err.ATTACH_SUPPRESS_ALL | Err.RTFDE | Err.STANDARDS_VIOLATION | Err.NAMED_NAME_STREAM
    mail = _Mail()
    try:
        # openMsg picks the class (mail, meeting, post...); a BytesIO, as olefile reads a
        # bytes argument under 1536 bytes as a file name; embedded mails opened when read
        message: Any = extract_msg.openMsg(
            io.BytesIO(data), errorBehavior=lenient, delayAttachments=True
        )
    except Exception as exc:  # extract-msg and olefile raise many kinds on bad input
        raise ParseError(f"not a readable Outlook MSG file ({exc})") from exc
    try:
        mail.subject = str(getattr(message, "subject", None) or "")
        mail.sender = str(getattr(message, "sender", None) or "")
        to = str(getattr(message, "to", None) or "")  # "A <a>; B <b>", as EML's ", "
        mail.to = ", ".join(t.strip() for t in to.split(";") if t.strip())
        date = getattr(message, "date", None)
        mail.date = date.isoformat() if isinstance(date, datetime) else ""
        name, addr = parseaddr(mail.sender)
        mail.author = name or addr or mail.sender
        body = getattr(message, "body", None)
        if isinstance(body, str) and body.strip():
            mail.body = body
        else:
            html = getattr(message, "htmlBody", None)
            if isinstance(html, bytes):
                mail.body = _html_text(html)
        _check_msg_depth(message, 0, limits)
        _msg_attachments(message, limits, mail)
    except ParseError:
        raise
    except RecursionError:
        raise _depth_error(limits) from None
    except Exception as exc:
        raise ParseError(f"not a readable Outlook MSG file ({exc})") from exc
    finally:
        message.close()
    return _document(mail, MSG_TYPE, out_dir)
