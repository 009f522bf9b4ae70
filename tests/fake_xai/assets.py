"""The fake service's asset host: a local HTTP server for the result URLs it returns.

Each asset has a serving mode, so a test can make a URL expire (404) or cut its body
short (Content-Length promises more than is sent), once or always.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "mp4": "video/mp4"}


@dataclass
class Asset:
    body: bytes
    content_type: str
    mode: str = "ok"  # ok | 404 | truncated | truncated_once
    fetches: int = 0


class AssetServer:
    def __init__(self) -> None:
        self._assets: dict[str, Asset] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with store._lock:
                    asset = store._assets.get(path)
                    if asset is not None:
                        asset.fetches += 1
                        mode = asset.mode
                        if mode == "truncated_once" and asset.fetches > 1:
                            mode = "ok"
                if asset is None or mode == "404":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
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

    def add(self, body: bytes, ext: str, mode: str = "ok") -> str:
        """Serve `body` under a fresh path; return its full URL."""
        path = f"/assets/{next(self._ids):05d}.{ext}"
        with self._lock:
            self._assets[path] = Asset(body, CONTENT_TYPES[ext], mode)
        return self.base_url + path

    def fetches(self, url: str) -> int:
        path = url[len(self.base_url) :]
        with self._lock:
            asset = self._assets.get(path)
            return asset.fetches if asset else 0
