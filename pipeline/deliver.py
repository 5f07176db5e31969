"""deliver: the week's briefing -> one email per recipient, exactly once.

`build_message` is pure: briefing, addresses, date and Message-ID in, an `EmailMessage` out.
A transport hands a message over: `SmtpTransport`, or `FileTransport` (.eml files, what
`--dry-run` uses). `deliver_week` keeps the `deliveries` table, one row per week and recipient:

1. claim: in one IMMEDIATE transaction, decide from the row (`verdict`) and, if it is to be
   sent, mark it 'pending' with attempts + 1 and the new Message-ID; commit;
2. hand the message over;
3. record 'sent' at once, or 'failed' with the error and the time of the next attempt.

The one window left: a crash between steps 1 and 3 (the hand-over takes the time, so most
likely after the server accepted the message), or a link that drops while waiting for the
server's reply to the message data, leaves the row 'pending': possibly delivered. Such a row is
never resent automatically (a duplicate cannot be taken back; a missing briefing can be sent by
hand): every `send` of that week reports it, exit code 1, with its Message-ID to look up in the
mail server's log and the `--force --to` command that resends.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

import sqlite_utils

from . import store
from .config import EmailConfig
from .errors import ChipwatchError, ConfigError

log = logging.getLogger("chipwatch.deliver")

# CRLF line ends and 7-bit body encodings, so any SMTP server takes it (no 8BITMIME needed).
POLICY = policy.SMTP.clone(cte_type="7bit")
SUBJECT_PREFIX = "AI-chip briefing"
HEADLINE_LIMIT = 150
BACKOFF_FIRST = timedelta(minutes=15)
BACKOFF_MAX = timedelta(hours=6)

# What `verdict` decides for a recipient.
SEND, ALREADY_SENT, UNKNOWN, WAITING, GAVE_UP = "send", "already sent", "unknown", "waiting", "gave up"
# What an attempt ends in, besides the skips above.
SENT, FAILED, WRITTEN = "sent", "failed", "written"


# ---- the message (pure) --------------------------------------------------------------------

_LINE_LIKE = {"Cc", "Zl", "Zp"}          # controls (CR, LF, NEL, VT, FF, ...), U+2028, U+2029
_INVISIBLE = {"Cf", "Cs", "Co", "Cn"}     # format (bidi overrides, zero-width), surrogates, unassigned
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[bBqQ]\?[^?]*\?=")


def header_text(value: str, limit: int = HEADLINE_LIMIT) -> str:
    """Feed text made safe for a header: one line of visible text, no RFC 2047 encoded words.

    Controls and line separators become spaces; invisible characters go. Encoded words go
    too: the email package decodes them when a header is set, leniently (`=? UTF-8?Q?=0A?=`
    counts), so they would turn into real line breaks (CVE-2024-6923). After removing what
    looks like one, any `=?` left is broken up, so none can start.
    """
    text = "".join(" " if unicodedata.category(ch) in _LINE_LIKE else ch
                   for ch in value if unicodedata.category(ch) not in _INVISIBLE)
    text = _ENCODED_WORD.sub(" ", text).replace("=?", " ")
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    return text


def subject(week: str, headline: str) -> str:
    headline = header_text(headline)
    return f"{SUBJECT_PREFIX} {week}: {headline}" if headline else f"{SUBJECT_PREFIX} {week}"


class ExactHeader(str):
    """A header value folded by `email.header.Header` instead of the policy's folder.

    The policy's folder (3.11 here) loses the space where it splits a run of encoded words
    across lines, and breaks a long subject right after "Subject:", which parsers then read
    back with a leading space. Header's folding reads back exactly. A value with `name` and
    `fold` is what the policy API stores and folds as given.
    """

    name: str

    def __new__(cls, name: str, value: str) -> ExactHeader:
        header = super().__new__(cls, value)
        header.name = name
        return header

    def fold(self, *, policy) -> str:
        charset = "us-ascii" if self.isascii() else "utf-8"
        encoded = Header(str(self), charset, header_name=self.name).encode(linesep=policy.linesep)
        return f"{self.name}: {encoded}{policy.linesep}"


@dataclass(frozen=True)
class Briefing:
    week: str
    headline: str
    html: str
    text: str


def load_briefing(db: sqlite_utils.Database, week: str) -> Briefing | None:
    row = db.execute("SELECT week, headline, html, text FROM briefings WHERE week = ?", [week]).fetchone()
    return Briefing(*row) if row else None


def build_message(briefing: Briefing, sender: str, recipient: str, date: datetime,
                  message_id: str) -> EmailMessage:
    """multipart/alternative: text/plain first, text/html last (the part mail clients prefer)."""
    message = EmailMessage(policy=POLICY)
    message["Subject"] = ExactHeader("Subject", subject(briefing.week, briefing.headline))
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = date
    message["Message-ID"] = message_id
    message.set_content(briefing.text)
    message.add_alternative(briefing.html, subtype="html")
    return message


def new_message_id(week: str, sender: str) -> str:
    """Unique, made before the send so a 'pending' row can name what to look for; short, so
    the header stays on one line."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "chipwatch.invalid"
    return f"<{week}.{uuid.uuid4().hex[:20]}@{domain}>"


def check_addresses(email: EmailConfig, where: str) -> None:
    """email.from and email.to must be plain addresses: they go into headers verbatim."""
    if not email.to:
        raise ConfigError(f"{where}: email.to: no recipients; add at least one address")
    for key, value in [("email.from", email.from_), *((f"email.to[{i}]", v) for i, v in enumerate(email.to))]:
        address = parseaddr(value)[1]
        if header_text(value, limit=len(value) + 1) != value or "@" not in address or " " in address:
            raise ConfigError(f"{where}: {key}: {value!r} is not an email address")


# ---- transports ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Letter:
    """A built message and its envelope."""

    week: str
    sender: str
    recipient: str
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


def make_letter(briefing: Briefing, sender: str, recipient: str, now: datetime) -> Letter:
    message = build_message(briefing, sender, recipient, now, new_message_id(briefing.week, sender))
    return Letter(briefing.week, parseaddr(sender)[1], parseaddr(recipient)[1], message)


class DeliveryError(ChipwatchError):
    """The run could not go on (e.g. the outbox folder is not writable)."""


class SendFailed(Exception):
    """One recipient was not sent to; `possibly_delivered` when the outcome cannot be known."""

    def __init__(self, message: str, possibly_delivered: bool = False):
        super().__init__(message)
        self.possibly_delivered = possibly_delivered


@dataclass(frozen=True)
class FileTransport:
    """Writes `<week>-<recipient>.eml` (RFC 5322, CRLF) into a folder; a resend overwrites it."""

    folder: Path

    def describe(self) -> str:
        return f"file {self.folder}"

    def path_for(self, letter: Letter) -> Path:
        return self.folder / f"{letter.week}-{re.sub(r'[^A-Za-z0-9@._+-]', '_', letter.recipient)}.eml"

    def send(self, letter: Letter) -> None:
        path = self.path_for(letter)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(letter.message.as_bytes())
            tmp.replace(path)
        except OSError as exc:
            raise SendFailed(describe_error(exc)) from exc


@dataclass(frozen=True)
class SmtpTransport:
    host: str
    port: int
    security: str
    timeout_s: float
    credentials: tuple[str, str] | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, email: EmailConfig, environ: Mapping[str, str] = os.environ) -> SmtpTransport:
        return cls(email.smtp_host, email.smtp_port, email.security, email.timeout_s,
                   credentials(email, environ))

    def describe(self) -> str:
        auth = "AUTH" if self.credentials else "no AUTH"
        return f"smtp {self.host}:{self.port}, security {self.security}, {auth}"

    def send(self, letter: Letter) -> None:
        try:
            conn = self._open()
        except OSError as exc:
            raise SendFailed(describe_error(exc)) from exc
        try:
            self._login(conn)
            _hand_over(conn, letter)
        except OSError as exc:           # smtplib.SMTPException is an OSError too
            raise SendFailed(describe_error(exc)) from exc
        finally:
            _close_quietly(conn)

    def _open(self) -> smtplib.SMTP:
        if self.security == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s,
                                    context=ssl.create_default_context())
        conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        if self.security == "starttls":
            try:
                conn.starttls(context=ssl.create_default_context())
            except OSError:
                _close_quietly(conn)
                raise
        return conn

    def _login(self, conn: smtplib.SMTP) -> None:
        if self.credentials is None:
            return
        if self.security == "none":
            log.warning("email.security = none: the SMTP password crosses the network in clear text")
        conn.login(*self.credentials)


def credentials(email: EmailConfig, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(user, password) from the environment variables the config names; None: no AUTH."""
    user = environ.get(email.username_env, "")
    if not user:
        return None
    password = environ.get(email.password_env)
    if password is None:
        raise ConfigError(f"email.password_env: ${email.password_env} is not set, "
                          f"but ${email.username_env} is (AUTH needs both)")
    return user, password


def _hand_over(conn: smtplib.SMTP, letter: Letter) -> None:
    """MAIL, RCPT, DATA; only a lost reply to the data itself leaves the outcome unknown."""
    conn.ehlo_or_helo_if_needed()
    code, reply = conn.mail(letter.sender)
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, reply, letter.sender)
    code, reply = conn.rcpt(letter.recipient)
    if code not in (250, 251):
        raise smtplib.SMTPRecipientsRefused({letter.recipient: (code, reply)})
    try:
        code, reply = conn.data(letter.message.as_bytes())
    except smtplib.SMTPDataError:
        raise                            # DATA itself was refused: nothing was handed over
    except OSError as exc:
        raise SendFailed(f"no reply to the message data ({describe_error(exc)}); it may have been delivered",
                         possibly_delivered=True) from exc
    if code != 250:
        raise smtplib.SMTPDataError(code, reply)


def _close_quietly(conn: smtplib.SMTP) -> None:
    """QUIT politely; a failure here changes nothing about the message."""
    try:
        conn.quit()
    except OSError:
        conn.close()


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return f"{type(exc).__name__}: {exc.smtp_code} {reply}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{r}: {c} {m.decode('utf-8', 'replace')}" for r, (c, m) in exc.recipients.items())
        return f"{type(exc).__name__}: {refused}"
    return f"{type(exc).__name__}: {exc}"


# ---- the deliveries table ------------------------------------------------------------------

def backoff(attempts: int) -> timedelta:
    """15 min, 30 min, 1 h, 2 h ... at most 6 h between attempts."""
    return min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


def verdict(row: dict | None, now: datetime, max_attempts: int, force: bool = False) -> str:
    """What to do for one recipient given its deliveries row (pure)."""
    if force or row is None:
        return SEND
    if row["status"] == "sent":
        return ALREADY_SENT
    if row["status"] == "pending":
        return UNKNOWN
    if row["attempts"] >= max_attempts:
        return GAVE_UP
    due = row["next_attempt_after"]
    if due and now < datetime.fromisoformat(due):
        return WAITING
    return SEND


def delivery_rows(db: sqlite_utils.Database, week: str) -> dict[str, dict]:
    return {r["recipient"]: dict(r) for r in db.query("SELECT * FROM deliveries WHERE week = ?", [week])}


def due_retries(db: sqlite_utils.Database, now: datetime, max_attempts: int) -> dict[str, list[str]]:
    """week -> recipients whose failed delivery may be tried again now."""
    due: dict[str, list[str]] = {}
    for row in db.query("SELECT * FROM deliveries WHERE status = 'failed' ORDER BY week, recipient"):
        if verdict(dict(row), now, max_attempts) == SEND:
            due.setdefault(row["week"], []).append(row["recipient"])
    return due


def _claim(db: sqlite_utils.Database, week: str, recipient: str, message_id: str, now: datetime,
           max_attempts: int, force: bool) -> tuple[str, dict | None]:
    """Decide and, when sending, commit the 'pending' row first. IMMEDIATE: two senders serialize."""
    with store.transaction(db) as conn:
        cursor = conn.execute("SELECT * FROM deliveries WHERE week = ? AND recipient = ?", (week, recipient))
        found = cursor.fetchone()
        row = dict(zip([c[0] for c in cursor.description], found)) if found else None
        decision = verdict(row, now, max_attempts, force)
        if decision == SEND:
            conn.execute(
                "INSERT INTO deliveries (week, recipient, status, attempts, message_id) "
                "VALUES (?, ?, 'pending', 1, ?) ON CONFLICT(week, recipient) DO UPDATE SET "
                "status = 'pending', attempts = attempts + 1, message_id = excluded.message_id, "
                "sent_at = NULL, error = NULL, next_attempt_after = NULL",
                (week, recipient, message_id))
    return decision, row


def _record(db: sqlite_utils.Database, week: str, recipient: str, **columns: object) -> None:
    assignments = ", ".join(f"{name} = ?" for name in columns)
    with store.transaction(db) as conn:
        conn.execute(f"UPDATE deliveries SET {assignments} WHERE week = ? AND recipient = ?",
                     (*columns.values(), week, recipient))


# ---- one week, every recipient ---------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    recipient: str
    status: str             # sent, written, failed, already sent, unknown, waiting, gave up
    detail: str = ""


@dataclass
class DeliveryReport:
    week: str
    transport: str
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, *statuses: str) -> int:
        return sum(1 for o in self.outcomes if o.status in statuses)

    @property
    def needs_attention(self) -> bool:
        """Something a person should look at: cron mails it (exit code 1)."""
        return bool(self.count(FAILED, UNKNOWN, GAVE_UP))

    def line(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in (SENT, WRITTEN, ALREADY_SENT, FAILED, WAITING, UNKNOWN, GAVE_UP)
                 if self.count(s)]
        return f"send {self.week}: {', '.join(parts) or 'no recipients'} via {self.transport}"

    def details(self) -> list[str]:
        return [f"  {o.recipient}: {o.status}: {o.detail}" for o in self.outcomes if o.detail]


def deliver_week(db: sqlite_utils.Database, briefing: Briefing, sender: str, recipients: list[str],
                 transport, now: datetime, max_attempts: int, force: bool = False) -> DeliveryReport:
    report = DeliveryReport(briefing.week, transport.describe())
    for recipient in recipients:
        report.outcomes.append(_deliver_one(db, briefing, sender, recipient, transport, now, max_attempts, force))
    return report


def preview_week(briefing: Briefing, sender: str, recipients: list[str], transport: FileTransport,
                 now: datetime) -> DeliveryReport:
    """The dry run: the same messages, written as files; the deliveries table is not touched."""
    report = DeliveryReport(briefing.week, transport.describe())
    for recipient in recipients:
        letter = make_letter(briefing, sender, recipient, now)
        try:
            transport.send(letter)
        except SendFailed as exc:
            raise DeliveryError(f"--dry-run: cannot write {transport.path_for(letter)}: {exc}") from exc
        report.outcomes.append(Outcome(recipient, WRITTEN, str(transport.path_for(letter))))
    return report


def _deliver_one(db, briefing: Briefing, sender: str, recipient: str, transport, now: datetime,
                 max_attempts: int, force: bool) -> Outcome:
    week, letter = briefing.week, make_letter(briefing, sender, recipient, now)
    decision, row = _claim(db, week, recipient, letter.message_id, now, max_attempts, force)
    if decision != SEND:
        return _skipped(recipient, decision, row, week)
    attempts = (row["attempts"] if row else 0) + 1
    try:
        transport.send(letter)
    except SendFailed as exc:
        if exc.possibly_delivered:
            _record(db, week, recipient, error=str(exc))
            return _skipped(recipient, UNKNOWN, {"message_id": letter.message_id, "error": str(exc)}, week)
        retry_at = now + backoff(attempts) if attempts < max_attempts else None
        _record(db, week, recipient, status="failed", error=str(exc),
                next_attempt_after=retry_at.isoformat(timespec="seconds") if retry_at else None)
        then = f"retry after {retry_at.isoformat(timespec='minutes')}" if retry_at else "no attempts left"
        return Outcome(recipient, FAILED, f"{exc} (attempt {attempts} of {max_attempts}; {then})")
    _record(db, week, recipient, status="sent", sent_at=now.isoformat(timespec="seconds"))
    return Outcome(recipient, SENT)


def _skipped(recipient: str, decision: str, row: dict, week: str) -> Outcome:
    resend = f"`chipwatch send --week {week} --force --to {recipient}` sends it again"
    if decision == UNKNOWN:
        cause = row["error"] or "the process stopped before recording the outcome"
        return Outcome(recipient, UNKNOWN,
                       f"an attempt may have been delivered ({cause}); look for Message-ID "
                       f"{row['message_id']} in the mail server's log; if it is not there, {resend}")
    if decision == GAVE_UP:
        return Outcome(recipient, GAVE_UP, f"{row['attempts']} attempts failed, the last: {row['error']}; {resend}")
    if decision == WAITING:
        return Outcome(recipient, WAITING, f"retry after {row['next_attempt_after']} ({row['error']})")
    return Outcome(recipient, decision)
