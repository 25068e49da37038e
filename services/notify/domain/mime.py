"""A letter as an Internet message: plain text first, then HTML, then the calendar part, with
headers no free text can add to.

Every header value that carries someone's words (a subject made from a purpose, a name) is made
one line first; the standard library's `email` then refuses any CR or LF left, so a purpose
such as "x\\r\\nBcc: y" stays in the body and never becomes a header.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr

from services.notify.domain.letters import Rendered
from services.notify.domain.plans import Method
from shared.contracts import Person

_CONTROLS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def one_line(value: str) -> str:
    """`value` as one header line: controls (CR, LF among them) become spaces, runs of
    whitespace one space."""
    return " ".join(_CONTROLS.sub(" ", value).split())


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
    message = EmailMessage(policy=SMTP)
    name, address = sender(mail_from)
    message["From"] = Address(display_name=one_line(name), addr_spec=address)
    message["To"] = Address(display_name=one_line(to.name), addr_spec=to.email)
    message["Subject"] = one_line(rendered.subject)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    # Tells vacation responders and mail filters this came from a machine (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    if calendar is not None:
        method, body = calendar
        message.add_alternative(
            body, subtype="calendar", charset="utf-8", params={"method": method}
        )
    # Set last: making the body multipart moves every Content-* header into its first part.
    message["Content-Language"] = rendered.locale
    return message.as_bytes()


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
