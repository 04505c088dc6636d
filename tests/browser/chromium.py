"""Headless Debian chromium driven over the DevTools protocol on a pipe.

No websocket client or driver package: chromium speaks the protocol on file
descriptors 3 and 4 (``--remote-debugging-pipe``). Used by the browser tests
(tests/browser/test_report.py) and ``make screenshot`` (screenshot.py).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: The browser; SWAYSIM_CHROMIUM points elsewhere.
CHROMIUM = os.environ.get("SWAYSIM_CHROMIUM", "/usr/bin/chromium")


class Chromium:
    """Headless chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, executable: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="swaysim-chromium-")
        to_child, self._to_browser = os.pipe()
        self._from_browser, from_child = os.pipe()
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--force-color-profile=srgb",
            "--font-render-hinting=none",
            f"--user-data-dir={self.profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{to_child} 4>&{from_child}', "bash", executable, *flags],
            pass_fds=(to_child, from_child),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60.0
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60.0
        while True:
            for index, message in enumerate(self.events):
                if message.get("method") == method:
                    return self.events.pop(index)
            self.events.append(self._read(deadline))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer within 60 s")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close")
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One tab, recording console messages, exceptions, log errors and requests."""

    WIDTH = 1400
    HEIGHT = 1000

    def __init__(self, browser: Chromium) -> None:
        self.browser = browser
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        self.session: str = attached["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.WIDTH, "height": self.HEIGHT, "deviceScaleFactor": 1, "mobile": False},
        )

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session)

    def resize(self, width: int, height: int = HEIGHT) -> None:
        """Emulate a viewport ``width`` CSS pixels wide (screenshots follow it)."""
        self.WIDTH = width
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def load(self, path: Path) -> None:
        self.browser.events.clear()
        self.send("Page.navigate", {"url": path.resolve().as_uri()})
        self.browser.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression!r} threw: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def problems(self, allowed_url: str) -> list[str]:
        """Console errors, uncaught exceptions, error log entries and foreign requests."""
        found = []
        for message in self.browser.events:
            method = message.get("method")
            params = message.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                texts = [str(arg.get("value", arg.get("description"))) for arg in params["args"]]
                found.append(f"console.{params['type']}: {' '.join(texts)}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"log: {params['entry']['text']}")
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if url != allowed_url and not url.startswith("data:"):
                    found.append(f"request: {url}")
        return found

    def screenshot(self) -> bytes:
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        clip = {"x": 0, "y": 0, "width": self.WIDTH, "height": height, "scale": 1}
        shot = self.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        return base64.b64decode(shot["data"])


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


PAINTED = """(() => {
  const c = document.getElementById("timeline");
  const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let painted = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] > 0 && (px[i] < 200 || px[i + 1] < 200 || px[i + 2] < 200)) painted++;
  }
  return painted;
})()"""


@contextlib.contextmanager
def open_page(executable: str = CHROMIUM) -> Iterator[Page]:
    """A fresh headless browser with one tab; closed (and its profile removed) on exit."""
    browser = Chromium(executable)
    try:
        yield Page(browser)
    finally:
        browser.close()


def show_report(page: Page, report: Path) -> None:
    """Load a written report and wait until its timeline says it is drawn."""
    page.load(report)
    ready = page.evaluate("document.body.dataset.timelineReady")
    if ready != "1":
        raise RuntimeError(f"{report}: the timeline did not finish drawing ({ready!r})")
