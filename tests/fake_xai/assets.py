"""The fake service's asset host: a local HTTP server for the result URLs it returns.

Result URLs are temporary, as the real ones are: each asset expires `ttl_s` seconds after
it was made (404 from then on). Each asset also has a serving mode, so a test can make a
download fail in each way a real one can, once or always:

    ok | 404 | truncated | truncated_once | http_500_once | reset_once
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "mp4": "video/mp4"}
MODES = ("ok", "404", "truncated", "truncated_once", "http_500_once", "reset_once")


@dataclass
class Asset:
    body: bytes
    content_type: str
    mode: str = "ok"
    expires_at: float = float("inf")
    fetches: int = 0


class AssetServer:
    def __init__(self) -> None:
        self._assets: dict[str, Asset] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.clock: Callable[[], float] = time.monotonic  # a test may stop or advance it (URL expiry)
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with store._lock:
                    asset = store._assets.get(path)
                    mode = "404"
                    if asset is not None:
                        asset.fetches += 1
                        mode = asset.mode
                        if mode.endswith("_once") and asset.fetches > 1:
                            mode = "ok"
                        if store.clock() >= asset.expires_at:
                            mode = "404"  # the URL has expired
                if mode == "404":
                    self._empty(404)
                    return
                if mode == "http_500_once":
                    self._empty(500)
                    return
                if mode == "reset_once":  # the connection dies before any answer: RST, not FIN
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                body = asset.body
                self.send_response(200)
                self.send_header("Content-Type", asset.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode.startswith("truncated"):
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                else:
                    self.wfile.write(body)

            def _empty(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-xai-assets", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> AssetServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, body: bytes, ext: str, mode: str = "ok", ttl_s: float = float("inf")) -> str:
        """Serve `body` under a fresh path for `ttl_s` seconds; return its full URL."""
        assert mode in MODES, mode
        path = f"/assets/{next(self._ids):05d}.{ext}"
        with self._lock:
            self._assets[path] = Asset(body, CONTENT_TYPES[ext], mode, self.clock() + ttl_s)
        return self.base_url + path

    def fetches(self, url: str) -> int:
        path = url[len(self.base_url) :]
        with self._lock:
            asset = self._assets.get(path)
            return asset.fetches if asset else 0
