"""The storyboard on localhost, reloading itself after every build (`storyc serve`,
`storyc build --watch`).

A plain HTTP server on the loopback interface only (127.0.0.1; no option to bind anything
else), serving one output folder read-only. storyboard.html on disk has no script and a
Content-Security-Policy that forbids any; when served here, an HTML page gets one small
script that asks `/__storyc/version` once a second and reloads the page when the folder's
storyboard.html was rewritten. The served page's policy allows exactly that script (by a
nonce made for this server) and requests to this server, nothing else. Requests whose Host
is not this server's loopback address are refused (a web page elsewhere cannot reach the
folder through DNS rebinding).
"""

from __future__ import annotations

import html
import http.server
import os
import re
import secrets
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from storyc.report.html import CSP, STORYBOARD_FILE

HOST = "127.0.0.1"
VERSION_PATH = "/__storyc/version"
POLL_MS = 1000

_CSP_META = re.compile(r'(<meta http-equiv="Content-Security-Policy" content=")([^"]*)(">)')

# Reloads the page when the storyboard's version changes; quiet while the server is away
# (between two `storyc serve` runs), so the page simply picks up again.
_RELOAD_SCRIPT = """<script nonce="{nonce}">
(function () {{
  var seen = "{version}";
  setInterval(function () {{
    fetch("{path}", {{cache: "no-store"}}).then(function (r) {{ return r.ok ? r.text() : seen; }}).then(function (v) {{
      if (v !== seen) {{ location.reload(); }}
    }}).catch(function () {{}});
  }}, {poll});
}})();
</script>"""


def storyboard_version(out_dir: Path) -> str:
    """A token that changes whenever a build rewrites storyboard.html (written atomically:
    a new file each time), or "none" while there is none."""
    try:
        st = (Path(out_dir) / STORYBOARD_FILE).stat()
    except OSError:
        return "none"
    return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"


def served_page(page: str, nonce: str, version: str) -> str:
    """An HTML page as served: its policy extended by this server's script and requests,
    and the reload script before </body>."""
    policy = f"{CSP}; script-src 'nonce-{nonce}'; connect-src 'self'"
    page = _CSP_META.sub(lambda m: m.group(1) + html.escape(policy, quote=True) + m.group(3), page, count=1)
    script = _RELOAD_SCRIPT.format(nonce=nonce, version=version, path=VERSION_PATH, poll=POLL_MS)
    head, body_end, tail = page.rpartition("</body>")
    return f"{head}{script}\n{body_end}{tail}" if body_end else page + script


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: StoryboardServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(self.server_root()), **kwargs)

    def server_root(self) -> Path:  # set per server class below
        raise NotImplementedError

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the terminal belongs to the build's progress

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def _host_allowed(self) -> bool:
        host = (self.headers.get("Host") or "").strip().lower()
        port = self.server.server_address[1]
        return host in {f"{HOST}:{port}", f"localhost:{port}"}

    def do_GET(self) -> None:
        if not self._host_allowed():
            self.send_error(403, "storyc serve answers requests to its own loopback address only")
            return
        path = urllib.parse.urlsplit(self.path).path
        if path == VERSION_PATH:
            self._send(200, "text/plain; charset=utf-8", storyboard_version(self.server.out_dir).encode())
            return
        if path in ("", "/"):
            self.send_response(302)
            self.send_header("Location", "/" + STORYBOARD_FILE)
            self.end_headers()
            return
        if path.endswith(".html"):
            target = Path(self.translate_path(path))
            try:
                page = target.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                self.send_error(404, "not found")
                return
            version = storyboard_version(self.server.out_dir)
            body = served_page(page, self.server.nonce, version).encode("utf-8")
            self._send(200, "text/html; charset=utf-8", body)
            return
        super().do_GET()

    def do_HEAD(self) -> None:
        if not self._host_allowed():
            self.send_error(403)
            return
        super().do_HEAD()

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class StoryboardServer(http.server.ThreadingHTTPServer):
    """Serves `out_dir` on 127.0.0.1:`port` (0: any free port) in a background thread."""

    daemon_threads = True

    def __init__(self, out_dir: Path, port: int = 0):
        self.out_dir = Path(out_dir)
        self.nonce = secrets.token_urlsafe(16)  # one per server: the page's script is ours
        root = self.out_dir

        class Handler(_Handler):
            def server_root(self) -> Path:
                return root

        super().__init__((HOST, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/{STORYBOARD_FILE}"

    def start(self) -> StoryboardServer:
        self._thread = threading.Thread(target=self.serve_forever, name="storyc-serve", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def start_server(out_dir: Path, port: int = 0) -> StoryboardServer:
    """Start serving `out_dir` (created if missing). Raises OSError when the port is taken."""
    os.makedirs(out_dir, exist_ok=True)
    return StoryboardServer(out_dir, port).start()
