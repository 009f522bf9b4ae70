"""storyc.backends.download: https only (http on loopback when allowed), size caps, magic bytes,
truncation, expired URLs, checked redirects, atomic replacement."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fake_xai.media import make_jpeg
from storyc.backends.download import (
    AssetExpired,
    DownloadError,
    DownloadRefused,
    DownloadTruncated,
    check_url,
    download,
    sniff_kind,
)

JPEG = make_jpeg("1:1", seed=5)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MP4 = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64


class Routes(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        if not any(k == "Content-Length" for k, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/ok.jpg":
            self._send(200, JPEG)
        elif path == "/ok.png":
            self._send(200, PNG)
        elif path == "/ok.mp4":
            self._send(200, MP4)
        elif path == "/page.html":
            self._send(200, b"<html>sign in</html>")
        elif path == "/gone":
            self._send(404)
        elif path == "/expired":
            self._send(410)
        elif path == "/boom":
            self._send(503)
        elif path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", str(len(JPEG)))
            self.end_headers()
            self.wfile.write(JPEG[:100])
            self.wfile.flush()
            self.close_connection = True
        elif path == "/endless":  # no Content-Length: only the streaming cap stops it
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                self.wfile.write(JPEG[:3])
                for _ in range(64):
                    self.wfile.write(b"\x00" * 65536)
            except OSError:  # the client stopped reading at its cap
                pass
        elif path == "/to-remote-http":
            self._send(302, headers=[("Location", "http://example.com/x.jpg")])
        elif path == "/to-local":
            self._send(302, headers=[("Location", "/ok.jpg")])
        else:
            self._send(404)


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Routes)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def fetch(url, dest, **kw):
    kw.setdefault("max_bytes", 1 << 20)
    kw.setdefault("allow_loopback_http", True)
    return download(url, dest, **kw)


def no_leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # temp files are hidden


@pytest.mark.unit
def test_sniff_kind():
    assert [sniff_kind(b) for b in (JPEG[:16], PNG[:16], MP4[:16], b"<html>", b"")] == [
        "jpeg",
        "png",
        "mp4",
        None,
        None,
    ]


@pytest.mark.integration
def test_downloads_a_jpeg_atomically(server, tmp_path):
    dest = tmp_path / "sub" / "a.jpg"
    assert fetch(server + "/ok.jpg", dest) == dest
    assert dest.read_bytes() == JPEG and no_leftovers(dest.parent)


@pytest.mark.unit
@pytest.mark.parametrize(
    "url, allow",
    [
        ("http://example.com/a.jpg", True),  # plain http off loopback
        ("http://127.0.0.1:9/a.jpg", False),  # loopback http not allowed by the caller
        ("ftp://example.com/a.jpg", True),
        ("file:///etc/passwd", True),
        ("https:///nohost.jpg", True),
    ],
)
def test_refuses_non_https_urls_without_any_request(url, allow, tmp_path):
    with pytest.raises(DownloadRefused, match="only https"):
        download(url, tmp_path / "a.jpg", max_bytes=1000, allow_loopback_http=allow)
    assert not (tmp_path / "a.jpg").exists()


@pytest.mark.unit
def test_https_and_loopback_rules():
    check_url("https://cdn.x.ai/a.jpg")
    check_url("http://localhost:8000/a.jpg", allow_loopback_http=True)
    check_url("http://[::1]:8000/a.jpg", allow_loopback_http=True)
    with pytest.raises(DownloadRefused):
        check_url("http://10.0.0.1/a.jpg", allow_loopback_http=True)


@pytest.mark.integration
def test_refuses_oversized_bodies(server, tmp_path):
    with pytest.raises(DownloadRefused, match="cap"):
        fetch(server + "/ok.jpg", tmp_path / "a.jpg", max_bytes=len(JPEG) - 1)  # by Content-Length
    with pytest.raises(DownloadRefused, match="cap"):
        fetch(server + "/endless", tmp_path / "b.jpg", max_bytes=200_000)  # while streaming
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_refuses_wrong_content(server, tmp_path):
    with pytest.raises(DownloadRefused, match=r"not a JPEG/PNG file.*unknown content"):
        fetch(server + "/page.html", tmp_path / "a.jpg", allowed_kinds=("jpeg", "png"))
    with pytest.raises(DownloadRefused, match=r"not a MP4 file.*JPEG"):
        fetch(server + "/ok.jpg", tmp_path / "a.mp4", allowed_kinds=("mp4",))
    assert fetch(server + "/ok.mp4", tmp_path / "c.mp4", allowed_kinds=("mp4",)).read_bytes() == MP4
    assert fetch(server + "/ok.png", tmp_path / "d.png").read_bytes() == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4", "d.png"]


@pytest.mark.integration
def test_detects_a_truncated_body(server, tmp_path):
    with pytest.raises(DownloadTruncated, match="100 of") as info:
        fetch(server + "/truncated", tmp_path / "a.jpg")
    assert info.value.retryable and list(tmp_path.iterdir()) == []


@pytest.mark.integration
@pytest.mark.parametrize("path, code", [("/gone", 404), ("/expired", 410)])
def test_gone_urls_are_asset_expired(server, tmp_path, path, code):
    with pytest.raises(AssetExpired, match=f"HTTP {code}") as info:
        fetch(server + path + "?sig=SECRETSIGNATURE", tmp_path / "a.jpg")
    assert info.value.retryable
    assert "SECRETSIGNATURE" not in str(info.value)  # signed URLs: the query never shows


@pytest.mark.integration
def test_server_errors_are_retryable_download_errors(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 503") as info:
        fetch(server + "/boom", tmp_path / "a.jpg")
    assert info.value.retryable
    with pytest.raises(DownloadError) as info:
        fetch("http://127.0.0.1:1/a.jpg", tmp_path / "a.jpg")  # connection refused
    assert info.value.retryable


@pytest.mark.integration
def test_redirects_follow_the_same_rule(server, tmp_path):
    assert fetch(server + "/to-local", tmp_path / "a.jpg").read_bytes() == JPEG
    with pytest.raises(DownloadRefused, match="only https"):
        fetch(server + "/to-remote-http", tmp_path / "b.jpg")


@pytest.mark.integration
def test_a_failed_download_leaves_the_previous_file(server, tmp_path):
    dest = tmp_path / "a.jpg"
    dest.write_bytes(b"previous")
    with pytest.raises(DownloadTruncated):
        fetch(server + "/truncated", dest)
    assert dest.read_bytes() == b"previous" and no_leftovers(tmp_path)
