"""Headless Chromium for the rendering tests: find it, install it (as root), drive it.

`chromium()` returns the browser's path. When it is missing and we are root (CI, the lead's
container), it runs `apt-get update && apt-get install -y chromium` (Debian's package); any
other user gets a pytest skip that says how to install it.

`open_page()` drives the browser over the DevTools protocol on a pipe (as Puppeteer does), so
the page is measured from outside: nothing is injected into it, and the viewport can be 375 px
wide (a plain `--window-size` stops at 500 px in headless mode).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio",
         "--remote-debugging-pipe")
TIMEOUT_S = 30
MEASURE = """JSON.stringify({
  scrollWidth: document.documentElement.scrollWidth,
  innerWidth: window.innerWidth,
  scrollHeight: document.documentElement.scrollHeight,
  images: document.images.length,
  brokenImages: Array.prototype.filter.call(document.images, function (i) { return !i.naturalWidth; }).length
})"""


def find() -> str | None:
    explicit = os.environ.get("CHIPWATCH_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


def install() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200)
        if result.returncode:
            pytest.fail(f"`{' '.join(command)}` failed ({result.returncode}): {result.stderr[-2000:]}")


def chromium() -> str:
    """The Chromium binary, installed on the spot when we may; otherwise the test is skipped."""
    path = find()
    if path:
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("headless Chromium not found: install Debian's `chromium` package "
                    "(apt-get install chromium) or set CHIPWATCH_CHROMIUM to a Chromium binary")
    install()
    path = find()
    if not path:
        pytest.fail("apt-get installed chromium but no chromium binary is on the PATH")
    return path


@dataclass
class Page:
    """One tab, attached over the pipe. Events are kept for the checks (failed loads)."""

    process: subprocess.Popen
    to_browser: int
    from_browser: int
    session: str = ""
    events: list[dict] = field(default_factory=list)
    _buffer: bytes = b""
    _next_id: int = 0

    def send(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read()
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _read(self) -> dict:
        deadline = time.monotonic() + TIMEOUT_S
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self.from_browser], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                pytest.fail(f"chromium did not answer on the DevTools pipe within {TIMEOUT_S} s")
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                pytest.fail("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def load(self, path: Path, width: int, height: int = 900) -> None:
        """Open a local file at the given viewport width (a phone-like viewport when narrow)."""
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
        self.events.clear()
        self.send("Page.navigate", {"url": path.resolve().as_uri()})
        self.wait_for("Page.loadEventFired")

    def measure(self) -> dict:
        result = self.send("Runtime.evaluate", {"expression": MEASURE, "returnByValue": True})
        return json.loads(result["result"]["value"])

    def requests(self) -> list[str]:
        """Every URL the page asked for, the page itself included."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def failed_loads(self) -> list[dict]:
        return [e["params"] for e in self.events if e.get("method") == "Network.loadingFailed"]

    def screenshot(self, target: Path, width: int) -> Path:
        """The whole page, top to bottom, at the current width."""
        height = self.measure()["scrollHeight"]
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(data))
        return target


def _above_stdio(fd: int) -> int:
    """Move a descriptor out of the way of 3 and 4, where Chromium expects its pipe."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


@contextmanager
def open_page():
    """A fresh headless Chromium (new profile, offline flags) with one attached tab."""
    binary = chromium()
    to_child, to_browser = map(_above_stdio, os.pipe())
    from_browser, from_child = map(_above_stdio, os.pipe())
    with tempfile.TemporaryDirectory(prefix="chipwatch-chromium-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, start_new_session=True,
            preexec_fn=lambda: (os.dup2(to_child, 3), os.dup2(from_child, 4)))
        os.close(to_child)
        os.close(from_child)
        page = Page(process, to_browser, from_browser)
        try:
            target = page.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            page.session = page.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Network", "Runtime"):
                page.send(f"{domain}.enable")
            yield page
        finally:
            os.killpg(process.pid, signal.SIGKILL)   # the browser and its renderer processes
            process.wait(timeout=TIMEOUT_S)
            os.close(to_browser)
            os.close(from_browser)
