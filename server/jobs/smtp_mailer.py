"""SMTP delivery for ``oms-notify``: one reused connection, permanent refusals told apart
from failures worth a retry."""
from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage


class PermanentSendError(Exception):
    """The server refused the message for good (5xx for the recipient): retrying won't help."""


class Mailer:
    """One SMTP connection, reused between messages (checked with NOOP after an idle spell).
    Blocking: called from a thread, one message at a time."""

    def __init__(self, host: str, port: int, *, user: str = "", password: str = "",
                 starttls: bool = False, use_ssl: bool = False, timeout: float = 30.0) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.starttls, self.use_ssl, self.timeout = starttls, use_ssl, timeout
        self._conn: smtplib.SMTP | None = None
        self._used = 0.0

    def _connect(self) -> smtplib.SMTP:
        ctx = ssl.create_default_context()
        if self.use_ssl:
            conn: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                  context=ctx)
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.starttls:
                conn.starttls(context=ctx)
        if self.user:
            conn.login(self.user, self.password)
        return conn

    def _connection(self) -> smtplib.SMTP:
        if self._conn is not None and time.monotonic() - self._used > 5:
            try:
                if self._conn.noop()[0] != 250:
                    raise smtplib.SMTPServerDisconnected("NOOP refused")
            except (smtplib.SMTPException, OSError):
                self.close()
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def send(self, msg: EmailMessage) -> None:
        conn = self._connection()
        try:
            conn.send_message(msg)  # one recipient: a refusal raises SMTPRecipientsRefused
        except smtplib.SMTPRecipientsRefused as e:
            if all(code >= 500 for code, _ in e.recipients.values()):
                why = "; ".join(f"{r}: {c} {_s(m)}" for r, (c, m) in e.recipients.items())
                raise PermanentSendError(why) from e
            raise
        except BaseException:
            self.close()  # state unknown: start the next message on a fresh connection
            raise
        finally:
            self._used = time.monotonic()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()


def _s(v: bytes | str) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else v
