"""A real SMTP server on loopback (aiosmtpd) for the delivery and daemon tests."""

from __future__ import annotations

import asyncio
import email
import socket
from email import policy

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sink:
    """An SMTP server's handler that keeps every message; can refuse recipients or stall DATA."""

    def __init__(self):
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse: set[str] = set()
        self.stall_s = 0.0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        await asyncio.sleep(self.stall_s)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(content, policy=policy.default)
                for _, rcpts, content in self.messages if rcpts == [address]]


def start_server(port: int, sink: Sink, **smtp_parameters) -> Controller:
    controller = Controller(sink, hostname="127.0.0.1", port=port, **smtp_parameters)
    controller.start()
    return controller


@pytest.fixture
def smtp():
    """A loopback SMTP server (no TLS, no AUTH): yields (port, sink)."""
    sink, port = Sink(), free_port()
    controller = start_server(port, sink)
    yield port, sink
    controller.stop()


