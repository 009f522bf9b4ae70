"""Safe downloads of provider result URLs.

Provider URLs are temporary, so results are fetched at once, and they come from the
network, so nothing is trusted: only https (plain http only on loopback, for local test
services, when the caller allows it), redirects held to the same rule, the body
streamed to a temp file beside `dest` (store/fsutil.py) under a size cap, the length checked against
Content-Length (a truncated body is detected), the content checked by its magic bytes,
then renamed into place. Standard library only (urllib).
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from storyc.backends.base import BackendError
from storyc.store.fsutil import atomic_output

CHUNK = 64 * 1024
DEFAULT_TIMEOUT_S = 60.0
MIB = 1 << 20
# Caps the backends use: images are a few MiB, 15 s 720p clips a few tens of MiB.
MAX_IMAGE_BYTES = 40 * MIB
MAX_VIDEO_BYTES = 400 * MIB


class DownloadError(BackendError):
    """A result could not be fetched (network or HTTP error)."""


class AssetExpired(DownloadError):
    """The result URL is gone (HTTP 404/410): regenerate the asset."""

    def __init__(self, message: str):
        super().__init__(message, retryable=True)


class DownloadTruncated(DownloadError):
    """The body ended before its Content-Length: download again."""

    def __init__(self, message: str):
        super().__init__(message, retryable=True)


class DownloadRefused(DownloadError):
    """The URL or its content is not acceptable (scheme, host, size, file type)."""

    def __init__(self, message: str):
        super().__init__(message, retryable=False)


def sniff_kind(head: bytes) -> str | None:
    """'jpeg', 'png' or 'mp4' from a file's first bytes, else None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG"):
        return "png"
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return "mp4"
    return None


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def describe_url(url: str) -> str:
    """The URL without its query and fragment: signed URLs carry tokens in the query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def check_url(url: str, *, allow_loopback_http: bool = False) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and allow_loopback_http and is_loopback_host(parts.hostname):
        return
    raise DownloadRefused(
        f"refusing to download {describe_url(url)}: only https URLs are fetched"
        + (" (plain http only from a loopback host)" if allow_loopback_http else "")
    )


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL that passes the same scheme/host rule."""

    def __init__(self, allow_loopback_http: bool):
        self.allow_loopback_http = allow_loopback_http

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl, allow_loopback_http=self.allow_loopback_http)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(url: str, allow_loopback_http: bool) -> urllib.request.OpenerDirector:
    handlers: list = [_CheckedRedirects(allow_loopback_http)]
    if is_loopback_host(urlsplit(url).hostname):
        handlers.append(urllib.request.ProxyHandler({}))  # never send a loopback fetch to a proxy
    return urllib.request.build_opener(*handlers)


def download(
    url: str,
    dest: Path | str,
    *,
    max_bytes: int,
    allowed_kinds: Iterable[str] = ("jpeg", "png", "mp4"),
    allow_loopback_http: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Fetch `url` into `dest` atomically; return `dest`. Raises a `DownloadError` subclass."""
    dest = Path(dest)
    allowed = tuple(allowed_kinds)
    shown = describe_url(url)
    check_url(url, allow_loopback_http=allow_loopback_http)
    dest.parent.mkdir(parents=True, exist_ok=True)

    request = urllib.request.Request(url, headers={"User-Agent": "storyc"})
    try:
        response = _opener(url, allow_loopback_http).open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in (404, 410):
            raise AssetExpired(f"result URL {shown} is gone (HTTP {exc.code}); the asset must be regenerated") from None
        raise DownloadError(f"downloading {shown} failed: HTTP {exc.code}", retryable=exc.code >= 500) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        if isinstance(exc, DownloadError):
            raise
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"downloading {shown} failed: {reason}", retryable=True) from None

    with response:
        length_header = response.headers.get("Content-Length")
        expected = int(length_header) if length_header and length_header.isdigit() else None
        if expected is not None and expected > max_bytes:
            raise DownloadRefused(f"{shown} is {expected} bytes, over the {max_bytes}-byte cap")
        with atomic_output(dest) as tmp:  # any error below removes the temp file
            received = 0
            head = b""
            with open(tmp, "wb") as out:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except http.client.IncompleteRead as exc:
                        received += len(exc.partial)
                        raise DownloadTruncated(
                            f"{shown}: body truncated at {received} of {expected or '?'} bytes"
                        ) from None
                    except (TimeoutError, OSError) as exc:
                        raise DownloadError(f"downloading {shown} failed: {exc}", retryable=True) from None
                    if not chunk:
                        break
                    received += len(chunk)
                    if received > max_bytes:
                        raise DownloadRefused(f"{shown} is over the {max_bytes}-byte cap")
                    if len(head) < 16:
                        head += chunk[: 16 - len(head)]
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if expected is not None and received != expected:
                raise DownloadTruncated(f"{shown}: body truncated at {received} of {expected} bytes")
            kind = sniff_kind(head)
            if kind not in allowed:
                raise DownloadRefused(
                    f"{shown} is not a {'/'.join(k.upper() for k in allowed)} file "
                    f"(got {kind.upper() if kind else 'unknown content'})"
                )
    return dest
