"""deliver: real SMTP on loopback (aiosmtpd), real SQLite, the message parsed back."""

from __future__ import annotations

import base64
import email
import re
import sqlite3
import unicodedata
from datetime import datetime, timedelta, timezone
from email import policy

import pytest
import time_machine
from aiosmtpd.smtp import AuthResult
from hypothesis import example, given, settings, strategies as st

from pipeline import deliver, jobs, lock
from pipeline.config import load

from .conftest import write_config
from .smtp_server import Sink, free_port, start_server

WEEK = "2024-W30"
TO = ("ana@example.org", "ben@example.org")
EXPECTED_HEADERS = ["Subject", "From", "To", "Date", "Message-ID", "MIME-Version", "Content-Type"]


def email_config(tmp_path, port: int, to=TO, extra: str = "", enabled: bool = True, timeout_s: float = 5):
    recipients = ", ".join(f'"{r}"' for r in to)
    return write_config(tmp_path, [], extra=(
        f'[email]\nenabled = {str(enabled).lower()}\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
        f'security = "none"\ntimeout_s = {timeout_s}\nfrom = "chipwatch@example.org"\nto = [{recipients}]\n'
        f'{extra}'))


def deliveries(tmp_path) -> dict[str, dict]:
    conn = sqlite3.connect(tmp_path / "db/test.db")
    conn.row_factory = sqlite3.Row
    try:
        return {r["recipient"]: dict(r) for r in conn.execute("SELECT * FROM deliveries WHERE week = ?", (WEEK,))}
    finally:
        conn.close()


HEADLINE = "Trainium2 ships while Nvidia's H200 sells out"


def add_briefing(db_path, week: str = WEEK, headline: str = HEADLINE) -> None:
    """A stored briefing, as `chipwatch brief` leaves it (brief itself is tested in test_brief)."""
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("INSERT INTO briefings (week, generated_at, headline, html, text, stats) "
                     "VALUES (?, '2024-07-29T07:00:00+00:00', ?, ?, ?, '{}')",
                     (week, headline, f"<html><body><h1>{headline}</h1></body></html>", f"{headline}\n"))
    conn.close()


def ready(tmp_path, chipwatch, port: int, **kwargs):
    """A config pointing at `port`, an initialised database and the week's briefing."""
    path = email_config(tmp_path, port, **kwargs)
    assert chipwatch(path, "init").exit_code == 0
    add_briefing(tmp_path / "db/test.db")
    return path


# ---- over SMTP ---------------------------------------------------------------------------------

def test_send_delivers_one_multipart_message_per_recipient(tmp_path, chipwatch, smtp):
    port, sink = smtp
    path = ready(tmp_path, chipwatch, port)
    result = chipwatch(path, "send", "--week", WEEK)
    assert result.exit_code == 0, result.output
    assert "send 2024-W30: 2 sent via smtp 127.0.0.1" in result.output
    rows = deliveries(tmp_path)
    for address in TO:
        [message] = sink.to(address)
        assert list(message.keys()) == EXPECTED_HEADERS
        assert message["Subject"] == f"AI-chip briefing 2024-W30: {HEADLINE}"
        assert message["To"] == address and message["From"] == "chipwatch@example.org"
        assert message.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        assert message.get_body(("plain",)).get_content().splitlines() == [HEADLINE]
        assert f"<h1>{HEADLINE}</h1>" in message.get_body(("html",)).get_content()
        assert rows[address]["status"] == "sent" and rows[address]["attempts"] == 1
        assert rows[address]["message_id"] == message["Message-ID"]
    assert len(sink.messages) == 2


def test_send_writes_the_missing_briefing_first(tmp_path, chipwatch, smtp):
    port, sink = smtp
    path = email_config(tmp_path, port, to=("ana@example.org",))
    chipwatch(path, "init")
    result = chipwatch(path, "send", "--week", WEEK)
    assert result.exit_code == 0 and "brief 2024-W30: written first" in result.output
    [message] = sink.to("ana@example.org")
    assert message["Subject"].startswith("AI-chip briefing 2024-W30: ")
    assert (tmp_path / "out/briefings/2024-W30.html").is_file()


def test_a_second_send_sends_nothing(tmp_path, chipwatch, smtp):
    port, sink = smtp
    path = ready(tmp_path, chipwatch, port)
    chipwatch(path, "send", "--week", WEEK)
    again = chipwatch(path, "send", "--week", WEEK)
    assert again.exit_code == 0 and "2 already sent" in again.output
    assert len(sink.messages) == 2


def test_force_sends_again(tmp_path, chipwatch, smtp):
    port, sink = smtp
    path = ready(tmp_path, chipwatch, port)
    chipwatch(path, "send", "--week", WEEK)
    forced = chipwatch(path, "send", "--week", WEEK, "--force", "--to", "BEN@example.org")
    assert forced.exit_code == 0 and "1 sent" in forced.output
    assert len(sink.to("ana@example.org")) == 1 and len(sink.to("ben@example.org")) == 2
    assert deliveries(tmp_path)["ben@example.org"]["attempts"] == 2


def test_server_down_records_the_failure_and_a_later_run_sends_exactly_once(tmp_path, chipwatch):
    port = free_port()                      # nothing listens there yet
    path = ready(tmp_path, chipwatch, port)
    failed = chipwatch(path, "send", "--week", WEEK)
    assert failed.exit_code == 1 and "2 failed" in failed.output
    rows = deliveries(tmp_path)
    assert {r["status"] for r in rows.values()} == {"failed"}
    assert all(r["attempts"] == 1 and "ConnectionRefusedError" in r["error"] for r in rows.values())
    retry_at = datetime.fromisoformat(rows["ana@example.org"]["next_attempt_after"])
    assert timedelta(minutes=14) < retry_at - datetime.now(timezone.utc) <= timedelta(minutes=15)

    sink = Sink()
    controller = start_server(port, sink)
    try:
        early = chipwatch(path, "send", "--retry")
        assert early.exit_code == 0 and "no failed delivery is due" in early.output and not sink.messages
        waiting = chipwatch(path, "send", "--week", WEEK)
        assert waiting.exit_code == 0 and "2 waiting" in waiting.output and not sink.messages
        with time_machine.travel(retry_at + timedelta(seconds=1)):
            retried = chipwatch(path, "send", "--retry")
            assert retried.exit_code == 0 and "2 sent" in retried.output
            assert chipwatch(path, "send", "--retry").exit_code == 0
        assert chipwatch(path, "send", "--week", WEEK).exit_code == 0
    finally:
        controller.stop()
    assert sorted(r for _, [r], _ in sink.messages) == sorted(TO)
    assert {(r["status"], r["attempts"]) for r in deliveries(tmp_path).values()} == {("sent", 2)}


def test_a_refused_recipient_is_retried_alone(tmp_path, chipwatch, smtp):
    port, sink = smtp
    sink.refuse.add("ben@example.org")
    path = ready(tmp_path, chipwatch, port)
    first = chipwatch(path, "send", "--week", WEEK)
    assert first.exit_code == 1 and "1 sent, 1 failed" in first.output and "451 4.3.0" in first.output
    sink.refuse.clear()
    config = load(path)
    later = datetime.now(timezone.utc) + timedelta(minutes=16)
    [report] = jobs.retry_job(config, now=later)
    assert [(o.recipient, o.status) for o in report.outcomes] == [("ben@example.org", "sent")]
    assert jobs.retry_job(config, now=later + timedelta(hours=1)) == []
    assert len(sink.to("ana@example.org")) == 1 and len(sink.to("ben@example.org")) == 1


def test_retries_stop_after_max_attempts(tmp_path, chipwatch):
    path = ready(tmp_path, chipwatch, free_port(), to=("ana@example.org",), extra="max_attempts = 2\n")
    config, now = load(path), datetime.now(timezone.utc)
    jobs.send_job(config, WEEK, now=now)
    [report] = jobs.retry_job(config, now=now + timedelta(hours=1))
    assert report.outcomes[0].detail.endswith("(attempt 2 of 2; no attempts left)")
    assert jobs.retry_job(config, now=now + timedelta(days=1)) == []
    gave_up = jobs.send_job(config, WEEK, now=now + timedelta(days=1))
    assert gave_up.count(deliver.GAVE_UP) == 1 and gave_up.needs_attention
    assert "--force --to ana@example.org" in gave_up.outcomes[0].detail


def test_a_lost_reply_to_the_data_is_never_resent_without_force(tmp_path, chipwatch, smtp):
    """The one window: the server got the message, the reply never came. Possibly delivered."""
    port, sink = smtp
    sink.stall_s = 2.0
    path = ready(tmp_path, chipwatch, port, to=("ana@example.org",), timeout_s=0.5)
    first = chipwatch(path, "send", "--week", WEEK)
    row = deliveries(tmp_path)["ana@example.org"]
    assert first.exit_code == 1 and "1 unknown" in first.output
    assert row["status"] == "pending" and row["message_id"] in first.output
    assert "--force --to ana@example.org" in first.output
    sink.stall_s = 0.0
    again = chipwatch(path, "send", "--week", WEEK)
    assert again.exit_code == 1 and "1 unknown" in again.output
    assert chipwatch(path, "send", "--retry").exit_code == 0
    assert len(sink.messages) == 1
    forced = chipwatch(path, "send", "--week", WEEK, "--force", "--to", "ana@example.org")
    assert forced.exit_code == 0 and len(sink.messages) == 2
    assert deliveries(tmp_path)["ana@example.org"]["status"] == "sent"


def test_a_crash_after_the_claim_leaves_a_pending_row_that_is_reported_not_resent(tmp_path, chipwatch, smtp):
    port, sink = smtp
    path = ready(tmp_path, chipwatch, port, to=("ana@example.org",))
    conn = sqlite3.connect(tmp_path / "db/test.db")
    with conn:
        conn.execute("INSERT INTO deliveries (week, recipient, status, attempts, message_id) "
                     "VALUES (?, 'ana@example.org', 'pending', 1, '<x@example.org>')", (WEEK,))
    conn.close()
    result = chipwatch(path, "send", "--week", WEEK)
    assert result.exit_code == 1 and "<x@example.org>" in result.output and not sink.messages


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_credentials_reach_auth_and_never_the_logs(tmp_path, chipwatch, monkeypatch, caplog, capfd):
    user, password = "analyst-bot", "s3cr3t-Pa55word"
    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append((mechanism, auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == password.encode(), handled=False)

    sink, port = Sink(), free_port()
    controller = start_server(port, sink, authenticator=authenticator, auth_required=True,
                              auth_require_tls=False)
    try:
        monkeypatch.setenv("CHIPWATCH_SMTP_USER", user)
        monkeypatch.setenv("CHIPWATCH_SMTP_PASSWORD", password)
        path = ready(tmp_path, chipwatch, port, to=("ana@example.org",))
        caplog.set_level("DEBUG")
        ok = chipwatch(path, "send", "--week", WEEK)
        monkeypatch.setenv("CHIPWATCH_SMTP_PASSWORD", password + "-wrong")
        refused = chipwatch(path, "send", "--week", WEEK, "--force")
    finally:
        controller.stop()
    assert ok.exit_code == 0 and len(sink.messages) == 1
    assert seen[0][1:] == (user, password)
    assert refused.exit_code == 1 and "SMTPAuthenticationError: 535" in refused.output
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))
    assert "clear text" in ours                       # the warning about security = none
    captured = capfd.readouterr()
    text = "\n".join([ok.output, refused.output, ours, captured.out, captured.err,
                      str(deliveries(tmp_path))])
    for secret in (password, base64.b64encode(f"\0{user}\0{password}".encode()).decode(),
                   base64.b64encode(password.encode()).decode()):
        assert secret not in text


def test_starttls_never_falls_back_to_clear_text(tmp_path, chipwatch, smtp, monkeypatch):
    port, sink = smtp                                   # this server offers no STARTTLS
    monkeypatch.setenv("CHIPWATCH_SMTP_USER", "someone")
    monkeypatch.setenv("CHIPWATCH_SMTP_PASSWORD", "secret")
    path = ready(tmp_path, chipwatch, port, to=("ana@example.org",))
    path.write_text(path.read_text().replace('security = "none"', 'security = "starttls"'))
    result = chipwatch(path, "send", "--week", WEEK)
    assert result.exit_code == 1 and "STARTTLS extension not supported by server" in result.output
    assert not sink.messages and deliveries(tmp_path)["ana@example.org"]["status"] == "failed"


def test_a_user_without_a_password_variable_is_a_config_error(tmp_path, chipwatch, monkeypatch):
    monkeypatch.setenv("CHIPWATCH_SMTP_USER", "someone")
    monkeypatch.delenv("CHIPWATCH_SMTP_PASSWORD", raising=False)
    path = ready(tmp_path, chipwatch, free_port())
    result = chipwatch(path, "send", "--week", WEEK)
    assert result.exit_code == 2 and "$CHIPWATCH_SMTP_PASSWORD is not set" in result.output


# ---- no SMTP -------------------------------------------------------------------------------------

def test_dry_run_writes_eml_files_and_records_nothing(tmp_path, chipwatch):
    path = ready(tmp_path, chipwatch, free_port())     # the SMTP server is never contacted
    result = chipwatch(path, "send", "--week", WEEK, "--dry-run")
    assert result.exit_code == 0 and "2 written" in result.output
    files = sorted((tmp_path / "out/outbox").glob("*.eml"))
    assert [f.name for f in files] == [f"{WEEK}-{a}.eml" for a in TO]
    message = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert list(message.keys()) == EXPECTED_HEADERS and message["To"] == TO[0]
    assert b"\r\n" in files[0].read_bytes()
    assert deliveries(tmp_path) == {}


def test_email_disabled_says_so_and_exits_0(tmp_path, chipwatch):
    path = ready(tmp_path, chipwatch, free_port(), enabled=False)
    result = chipwatch(path, "send", "--week", WEEK)
    assert result.exit_code == 0 and "email is disabled" in result.output and "--dry-run" in result.output
    assert deliveries(tmp_path) == {} and not (tmp_path / "out/outbox").exists()


def test_file_transport_records_deliveries(tmp_path, chipwatch):
    path = ready(tmp_path, chipwatch, free_port(), extra='transport = "file"\n')
    assert chipwatch(path, "send", "--week", WEEK).exit_code == 0
    assert chipwatch(path, "send", "--week", WEEK).output.count("2 already sent") == 1
    assert len(list((tmp_path / "out/outbox").glob("*.eml"))) == 2
    assert {r["status"] for r in deliveries(tmp_path).values()} == {"sent"}


@pytest.mark.parametrize("to, problem", [
    ((), "email.to: no recipients"),
    (("ana@example.org", "not an address"), "email.to[1]: 'not an address' is not an email address"),
    (("ana@example.org\\nBcc: eve@example.org",), "is not an email address"),
])
def test_bad_addresses_are_config_errors(tmp_path, chipwatch, to, problem):
    path = ready(tmp_path, chipwatch, free_port(), to=to)
    result = chipwatch(path, "send", "--week", WEEK)
    assert result.exit_code == 2 and problem in result.output


def test_to_must_name_a_configured_recipient(tmp_path, chipwatch):
    path = ready(tmp_path, chipwatch, free_port())
    result = chipwatch(path, "send", "--week", WEEK, "--to", "eve@example.org")
    assert result.exit_code == 2 and "--to: eve@example.org not in email.to" in result.output


def test_send_exits_0_when_another_send_holds_the_lock(tmp_path, chipwatch, smtp, monkeypatch):
    port, sink = smtp
    path = ready(tmp_path, chipwatch, port)
    monkeypatch.setattr(lock, "WAIT_S", 0.2)
    with lock.hold(tmp_path / "db/test.db", "send"):
        result = chipwatch(path, "send", "--week", WEEK)
    assert result.exit_code == 0 and "send is already running" in result.output
    assert not sink.messages and deliveries(tmp_path) == {}


# ---- the pure parts ----------------------------------------------------------------------------

BRIEFING = deliver.Briefing(WEEK, "headline", "<html><body><p>Hi</p></body></html>", "Hi\n")
DATE = datetime(2024, 7, 29, 7, 0, tzinfo=timezone.utc)
ENCODED_WORD = re.compile(r"=\?[^?]*\?[bq]\?[^?]*\?=", re.I)
NASTY = st.sampled_from(["\r", "\n", "\r\n", "\x00", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028", "\u2029",
                         "\u202e", "\u200b", "\ufeff", "\ud800", "=?UTF-8?Q?=0A?=", "=?utf-8?b?Cg==?=", "=?",
                         "?=", "Bcc: eve@example.org", ": ", "\t", " ", "é", "芯片", "🚀", '"', "<>", ","])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(NASTY, st.text(max_size=8)), max_size=24).map("".join))
@example("Nvidia =?UTF-8?Q?=0A?=Bcc: eve@example.org")
@example("=?=?UTF-8?Q?x?=UTF-8?Q?=0A?=")
@example("a\u2028Bcc: eve@example.org\u2029b\x85c")
@example("x" * 400)
def test_feed_text_in_the_subject_never_makes_a_header(headline):
    briefing = deliver.Briefing(WEEK, headline, BRIEFING.html, BRIEFING.text)
    raw = deliver.build_message(briefing, "chipwatch@example.org", "ana@example.org", DATE,
                                "<1@example.org>").as_bytes()
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert list(parsed.keys()) == EXPECTED_HEADERS
    clean = deliver.header_text(headline)
    assert str(parsed["Subject"]) == (f"AI-chip briefing {WEEK}: {clean}" if clean else f"AI-chip briefing {WEEK}")
    assert parsed["To"] == "ana@example.org" and parsed["Message-ID"] == "<1@example.org>"
    assert deliver.header_text(clean) == clean           # nothing left to strip
    assert not ENCODED_WORD.search(clean)
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in clean)


def test_header_text_keeps_ordinary_headlines_and_shortens_long_ones():
    assert deliver.header_text("Nvidia’s H200 ships; AWS Trn2 — 30% cheaper") == \
        "Nvidia’s H200 ships; AWS Trn2 — 30% cheaper"
    assert deliver.header_text("  two\r\nlines\u2028here\t") == "two lines here"
    assert deliver.header_text("ev\u200bil\u202e") == "evil"
    long = deliver.header_text("word " * 100)
    assert len(long) <= deliver.HEADLINE_LIMIT and long.endswith("word…")


def row(status, attempts=1, next_attempt_after=None):
    return {"status": status, "attempts": attempts, "next_attempt_after": next_attempt_after}


@pytest.mark.parametrize("found, force, decision", [
    (None, False, deliver.SEND),
    (row("sent"), False, deliver.ALREADY_SENT),
    (row("sent"), True, deliver.SEND),
    (row("pending"), False, deliver.UNKNOWN),
    (row("pending"), True, deliver.SEND),
    (row("failed", 1, "2024-07-29T07:15:00+00:00"), False, deliver.WAITING),
    (row("failed", 1, "2024-07-29T06:59:00+00:00"), False, deliver.SEND),
    (row("failed", 5, "2024-07-29T06:59:00+00:00"), False, deliver.GAVE_UP),
    (row("failed", 5, None), True, deliver.SEND),
])
def test_verdict(found, force, decision):
    assert deliver.verdict(found, DATE, max_attempts=5, force=force) == decision


def test_backoff_doubles_up_to_six_hours():
    assert [deliver.backoff(n) for n in (1, 2, 3, 4)] == [timedelta(minutes=m) for m in (15, 30, 60, 120)]
    assert deliver.backoff(20) == timedelta(hours=6)
