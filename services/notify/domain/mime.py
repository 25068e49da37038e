"""A letter as an Internet message: plain text first, then HTML, then the calendar part, with
headers no free text can add to.

Every header value that carries someone's words (a subject made from a purpose, a name) is made
one line first, so a purpose such as "x\\r\\nBcc: y" stays in the body and never becomes a
header; words outside ASCII go as RFC 2047 encoded words.

Built with the standard library's `email.mime` classes under the compat32 policy rather than
`EmailMessage`: the newer API parses every header as it is set and again as the message is
written, which was a fifth of the worker's time under bench_notify (bench/README.md, § Notify).
"""

from __future__ import annotations

import re
from datetime import datetime
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr, parseaddr
from typing import Final

from services.notify.domain.letters import Rendered
from services.notify.domain.plans import Method
from shared.contracts import Person

_CONTROLS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
# CRLF line ends, as SMTP sends a message and an .eml file keeps it.
_POLICY: Final = compat32.clone(linesep="\r\n")


def one_line(value: str) -> str:
    """`value` as one header line: controls (CR, LF among them) become spaces, runs of
    whitespace one space."""
    return " ".join(_CONTROLS.sub(" ", value).split())


def header_words(name: str, value: str) -> str | Header:
    """The value of header `name` made one line, as encoded words where it is not ASCII (folded
    to the line length with the header's own name counted)."""
    line = one_line(value)
    return line if line.isascii() else Header(line, "utf-8", header_name=name)


def mailbox(name: str, address: str) -> str:
    """`name <address>`, the name quoted or encoded as it needs. An address is never rewritten:
    one with a control or a space in it is refused."""
    if _CONTROLS.search(address) or not address or any(c.isspace() for c in address):
        raise ValueError(f"not a mailbox address: {address!r}")
    return formataddr((one_line(name), address), charset="utf-8")


def sender(mail_from: str) -> tuple[str, str]:
    """(name, address) of the configured sender."""
    name, address = parseaddr(mail_from)
    return name, address


def message_id(delivery_id: str, mail_from: str) -> str:
    """The delivery's Message-ID: fixed when the delivery is recorded, so every try of it (and
    a resend after a crash) carries the same one."""
    domain = sender(mail_from)[1].rpartition("@")[2] or "commonroom.invalid"
    return f"<{delivery_id}@{domain}>"


def compose(
    *,
    rendered: Rendered,
    to: Person,
    mail_from: str,
    message_id: str,
    now: datetime,
    calendar: tuple[Method, str] | None = None,
) -> bytes:
    """The message's bytes, CRLF line ends, as SMTP sends them and an .eml file keeps them."""
    message = MIMEMultipart("alternative", policy=_POLICY)
    name, address = sender(mail_from)
    message["From"] = mailbox(name, address)
    message["To"] = mailbox(to.name, to.email)
    # compat32 takes a Header as a value and folds it as it writes; typeshed says str alone.
    message["Subject"] = header_words("Subject", rendered.subject)  # type: ignore[assignment]
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    # Tells vacation responders and mail filters this came from a machine (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = rendered.locale
    message.attach(MIMEText(rendered.text, "plain", "utf-8", policy=_POLICY))
    message.attach(MIMEText(rendered.html, "html", "utf-8", policy=_POLICY))
    if calendar is not None:
        method, body = calendar
        part = MIMEText(body, "calendar", "utf-8", policy=_POLICY)
        part.set_param("method", method)
        message.attach(part)
    return message.as_bytes(policy=_POLICY)


def written(
    *,
    rendered: Rendered,
    to: Person,
    mail_from: str,
    delivery_id: str,
    now: datetime,
    calendar: tuple[Method, str] | None,
) -> tuple[str, bytes]:
    """(Message-ID, bytes) of a delivery's one message."""
    fixed_id = message_id(delivery_id, mail_from)
    body = compose(
        rendered=rendered,
        to=to,
        mail_from=mail_from,
        message_id=fixed_id,
        now=now,
        calendar=calendar,
    )
    return fixed_id, body
