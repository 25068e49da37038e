"""Where messages go: an SMTP server (`COMMONROOM_SMTP_URL`), or, in the embedded default, a
folder of `.eml` files. Both take a batch and answer one outcome per message; the SMTP one sends
the whole batch over one connection.

No credential leaves this module: errors are described by the server's reply code and text, or
the kind of failure, with the URL's user and password cut out of anything that could hold them.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from services.notify.domain.delivery import SENT, Outcome
from shared.config import ConfigurationError

SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
CONNECT_TIMEOUT_SECONDS = 30.0


class Mailer(Protocol):
    async def send(self, sender: str, batch: Sequence[tuple[str, str, bytes]]) -> list[Outcome]:
        """Send each (delivery id, recipient, message) of `batch`; one outcome each, in order."""
        ...

    def describe(self) -> str:
        """Where mail goes, for the operator (no credentials)."""
        ...


class FolderMailer:
    """The embedded default: each message an `.eml` file, readable by its owner alone."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def describe(self) -> str:
        return f"written as .eml files under {self.folder}"

    async def send(
        self,
        sender: str,  # noqa: ARG002 - a file has no envelope
        batch: Sequence[tuple[str, str, bytes]],
    ) -> list[Outcome]:
        return await asyncio.to_thread(self._write_all, batch)

    def _write_all(self, batch: Sequence[tuple[str, str, bytes]]) -> list[Outcome]:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        outcomes = []
        for delivery_id, _, message in batch:
            try:
                self._write(self.folder / f"{delivery_id}.eml", message)
            except OSError as exc:
                outcomes.append(Outcome("temporary", f"cannot write the .eml file: {exc.strerror}"))
            else:
                outcomes.append(SENT)
        return outcomes

    @staticmethod
    def _write(path: Path, message: bytes) -> None:
        # Made 0600 from the start, never readable by others even for a moment; a resend after
        # a crash writes the same file again.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(message)


class SmtpMailer:
    """An SMTP server by URL: `smtp://` (plain), `smtp+starttls://` (STARTTLS required),
    `smtps://` (TLS from the start); `user:pass@` logs in. Certificates are checked."""

    def __init__(self, url: str, *, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ConfigurationError(
                "COMMONROOM_SMTP_URL must be smtp://, smtp+starttls:// or smtps://host[:port]"
            )
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or SCHEMES[parts.scheme]
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self.timeout = timeout

    def describe(self) -> str:
        return f"sent through {self.scheme}://{self.host}:{self.port}"

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self._username,
            password=self._password,
            use_tls=self.scheme == "smtps",
            start_tls=self.scheme == "smtp+starttls",
            validate_certs=True,
            tls_context=ssl.create_default_context() if self.scheme != "smtp" else None,
            timeout=self.timeout,
        )

    async def send(self, sender: str, batch: Sequence[tuple[str, str, bytes]]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        client = self._client()
        try:
            await client.connect()
        except aiosmtplib.SMTPException as exc:
            failure = Outcome("temporary", self._clean(_described(exc)))
            return [failure] * len(batch)
        except OSError as exc:
            failure = Outcome(
                "temporary", f"the mail server cannot be reached ({type(exc).__name__})"
            )
            return [failure] * len(batch)
        try:
            for _, recipient, message in batch:
                outcome = await self._send_one(client, sender, recipient, message)
                outcomes.append(outcome)
                if outcome.kind == "temporary" and not client.is_connected:
                    break
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
        away = Outcome("temporary", "the connection to the mail server was lost")
        return outcomes + [away] * (len(batch) - len(outcomes))

    async def _send_one(
        self, client: aiosmtplib.SMTP, sender: str, recipient: str, message: bytes
    ) -> Outcome:
        try:
            await client.sendmail(sender, [recipient], message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            await _reset(client)
            return _by_code(refused.code, self._clean(f"{refused.code} {refused.message}"))
        except aiosmtplib.SMTPResponseException as exc:
            return _by_code(exc.code, self._clean(f"{exc.code} {exc.message}"))
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Outcome("temporary", self._clean(_described(exc)))
        return SENT

    def _clean(self, error: str) -> str:
        """`error` with the login's user and password cut out, wherever a server echoed them."""
        for secret in (self._password, self._username):
            if secret:
                error = error.replace(secret, "***")
        return error


async def _reset(client: aiosmtplib.SMTP) -> None:
    """Clear the envelope a refused recipient left, so the next message starts clean."""
    if client.is_connected:
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            client.close()


def _by_code(code: int, error: str) -> Outcome:
    """5xx is permanent (RFC 5321 4.2.1); anything else, 4xx above all, is worth a later try."""
    return Outcome("permanent" if 500 <= code < 600 else "temporary", error)


def _described(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return "the mail server did not answer in time"
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError):
        return "the connection to the mail server was lost"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}"
    return f"the mail server failed ({type(exc).__name__})"


def mailer_for(smtp_url: str | None, var_dir: Path) -> Mailer:
    if smtp_url:
        return SmtpMailer(smtp_url)
    return FolderMailer(var_dir / "mail")
