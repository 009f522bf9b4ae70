"""A tiny Chrome DevTools Protocol client for the storyboard browser test.

Starts headless Chromium (Debian's `chromium`) with a fresh profile and an OS-chosen
debugging port, talks CDP over one WebSocket (`websockets.sync.client`, already a
Prefect dependency), and always kills Chromium's whole process group on exit, even when
the test fails. No Selenium, no Playwright: the page check needs only Page.navigate,
Runtime.evaluate, Page.captureScreenshot and the Network events.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The flags issue 6 names, plus the ones without which Chromium still tries to reach
# Google (connections are refused in CI sandboxes and would only add noise and delay).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-quic",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    """STORYC_CHROMIUM, else `chromium` (Debian) or `chromium-browser` on PATH."""
    explicit = os.environ.get("STORYC_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


class CDPError(RuntimeError):
    pass


class Chromium:
    """One headless Chromium and one page, driven over CDP (flattened target sessions)."""

    def __init__(
        self, binary: str, profile_dir: Path, *, width: int = 1280, height: int = 900, start_timeout: float = 30.0
    ):
        self.binary, self.profile_dir = binary, Path(profile_dir)
        self.width, self.height = width, height
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.ws = None
        self.session: str | None = None
        self.start_s: float | None = None  # launch → DevTools endpoint answering
        self.events: list[dict] = []  # every CDP event received, in order
        self._ids = itertools.count(1)

    # ── lifecycle ────────────────────────────────────────────────────────────

    def __enter__(self) -> Chromium:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        from websockets.sync.client import connect

        self.profile_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        # chromium writes through its own copy of the log file; ours closes at once
        with open(self.profile_dir.parent / f"{self.profile_dir.name}.log", "wb") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    *CHROMIUM_FLAGS,
                    "--remote-debugging-port=0",
                    f"--user-data-dir={self.profile_dir}",
                    f"--window-size={self.width},{self.height}",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: close() kills renderers and helpers too
            )
        port_file = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise CDPError(f"chromium exited with {self.proc.returncode} before DevTools started; see {log.name}")
            lines = port_file.read_text().splitlines() if port_file.is_file() else []
            if len(lines) >= 2:  # written at once? not always: wait for port and path
                break
            if time.monotonic() > deadline:
                raise CDPError(f"no DevToolsActivePort after {self.start_timeout:.0f} s; see {log.name}")
            time.sleep(0.02)
        port, path = int(lines[0]), lines[1]
        self.ws = connect(f"ws://127.0.0.1:{port}{path}", max_size=256 * 2**20, open_timeout=self.start_timeout)
        self.start_s = time.perf_counter() - t0
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=None)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session=None)[
            "sessionId"
        ]

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:
                pass
            self.ws = None
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own group (start_new_session)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    # ── protocol ─────────────────────────────────────────────────────────────

    _DEFAULT = object()

    def send(self, method: str, params: dict | None = None, *, session: Any = _DEFAULT, timeout: float = 30.0) -> dict:
        """One command; events that arrive meanwhile are kept in self.events."""
        msg_id = next(self._ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        session = self.session if session is self._DEFAULT else session
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline, method)
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def wait_event(
        self, method: str, timeout: float = 30.0, since: int = 0, where: Callable[[dict], bool] = lambda params: True
    ) -> dict:
        """The first event `method` at index >= since (already received or still to come)."""
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and where(event.get("params", {})):
                    return event["params"]
            seen = len(self.events)
            self._receive(deadline, method)

    def _receive(self, deadline: float, waiting_for: str) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CDPError(f"timed out waiting for {waiting_for}")
        try:
            raw = self.ws.recv(timeout=remaining)
        except TimeoutError:
            raise CDPError(f"timed out waiting for {waiting_for}") from None
        data = json.loads(raw)
        if "method" in data:
            self.events.append(data)
        return data

    # ── page helpers ─────────────────────────────────────────────────────────

    def navigate(self, url: str, timeout: float = 30.0) -> None:
        """Navigate and wait for the page's load event (every non-lazy <img> settled)."""
        mark = len(self.events)
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CDPError(f"navigate {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired", timeout=timeout, since=mark)

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """A JS expression's value (promises awaited), returned by value."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"page script failed: {text}")
        return result["result"].get("value")

    def screenshot(self, full_page: bool = False) -> bytes:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params.update(
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            )
        return base64.b64decode(self.send("Page.captureScreenshot", params)["data"])

    def requests(self) -> list[str]:
        """Every URL the page requested so far (Network.enable must have been sent)."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]


# Run in the page: load every <img> (lazy ones too) and wait (bounded) until every <img> and
# <video> settled, then describe each.
MEDIA_REPORT_JS = r"""
(async () => {
  const deadline = Date.now() + %(timeout_ms)d;
  const imgs = [...document.images];
  // lazy images load only near the viewport: load them all, so every path is checked
  imgs.forEach(i => { if (i.loading === 'lazy') i.loading = 'eager'; });
  const videos = [...document.querySelectorAll('video')];
  const settled = () => imgs.every(i => i.complete) &&
                        videos.every(v => v.error || v.readyState >= 1);
  while (!settled() && Date.now() < deadline) await new Promise(r => setTimeout(r, 50));
  return {
    images: imgs.map(i => ({src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth,
                            height: i.naturalHeight})),
    videos: videos.map(v => ({src: v.getAttribute('src'), readyState: v.readyState,
                              error: v.error ? v.error.code : null, duration: v.duration,
                              width: v.videoWidth, height: v.videoHeight,
                              poster: v.getAttribute('poster')})),
  };
})()
"""

# Run in the page: play each video muted until Chromium has decoded a frame (a loaded machine
# can take seconds; the deadline only guards against a hang) and count the frames decoded.
DECODE_JS = r"""
(async () => {
  const out = [];
  for (const v of document.querySelectorAll('video')) {
    v.muted = true;
    let played = null;
    try {
      await v.play();
      const deadline = Date.now() + 20000;
      while (v.getVideoPlaybackQuality().totalVideoFrames === 0 && !v.error && Date.now() < deadline)
        await new Promise(r => setTimeout(r, 50));
      v.pause(); played = true;
    }
    catch (e) { played = String(e); }
    const q = v.getVideoPlaybackQuality();
    out.push({src: v.getAttribute('src'), played, readyState: v.readyState, currentTime: v.currentTime,
              decodedFrames: q.totalVideoFrames, error: v.error ? v.error.code : null});
  }
  return {h264: document.createElement('video').canPlayType('video/mp4; codecs="avc1.640028, mp4a.40.2"'),
          videos: out};
})()
"""

# Run in the page: load each <audio>'s metadata (they are preload="none") and report its length.
AUDIO_JS = r"""
(async () => {
  const out = [];
  for (const a of document.querySelectorAll('audio')) {
    a.preload = 'metadata';
    a.load();
    await new Promise(done => { a.onloadedmetadata = done; a.onerror = done; setTimeout(done, 10000); });
    out.push({src: a.getAttribute('src'), duration: a.duration, error: a.error ? a.error.code : null});
  }
  return out;
})()
"""


def media_problems(report: dict) -> list[str]:
    """What did not load: broken images (not complete or 0 wide) and videos with an error
    or without metadata."""
    problems = []
    for img in report["images"]:
        if not (img["complete"] and img["width"] > 0):
            problems.append(f"image did not load: {img['src']}")
    for video in report["videos"]:
        if video["error"] is not None or video["readyState"] < 1:
            problems.append(
                f"video did not load: {video['src']} (readyState {video['readyState']}, error {video['error']})"
            )
    return problems


def check_media(browser: Chromium, url: str, timeout_s: float = 20.0) -> tuple[dict, list[str]]:
    """Open `url` and report every image and video on it, with the list of those that failed."""
    browser.navigate(url)
    report = browser.evaluate(MEDIA_REPORT_JS % {"timeout_ms": int(timeout_s * 1000)}, timeout=timeout_s + 10)
    return report, media_problems(report)
