"""Messages between `storyc` and its engine: length-prefixed JSON over a Unix stream
socket, optionally carrying file descriptors (the client's stdin/stdout/stderr)."""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Sequence
from typing import Any

_HEADER = struct.Struct(">I")
MAX_MESSAGE = 16 * 1024 * 1024


class Channel:
    """One connection; messages in order, never two read as one."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._buffer = b""

    def send(self, message: Any, fds: Sequence[int] = ()) -> None:
        data = json.dumps(message).encode()
        frame = _HEADER.pack(len(data)) + data
        if fds:
            sent = socket.send_fds(self.sock, [frame], list(fds))
            frame = frame[sent:]
        if frame:
            self.sock.sendall(frame)

    def recv(self, *, max_fds: int = 0) -> tuple[Any, list[int]]:
        """The next message and the descriptors that came with it; (None, []) at end of
        stream (the peer closed or died)."""
        fds: list[int] = []
        while True:
            if len(self._buffer) >= _HEADER.size:
                (length,) = _HEADER.unpack_from(self._buffer)
                if length > MAX_MESSAGE:
                    raise ValueError(f"engine message of {length} bytes")
                end = _HEADER.size + length
                if len(self._buffer) >= end:
                    data, self._buffer = self._buffer[_HEADER.size : end], self._buffer[end:]
                    return json.loads(data), fds
            if max_fds and not fds:
                chunk, got, _flags, _addr = socket.recv_fds(self.sock, 65536, max_fds)
                fds.extend(got)
            else:
                chunk = self.sock.recv(65536)
            if not chunk:
                for fd in fds:
                    _close(fd)
                return None, []
            self._buffer += chunk

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _close(fd: int) -> None:
    import os

    try:
        os.close(fd)
    except OSError:
        pass
