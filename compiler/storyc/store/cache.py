"""Content-addressed store for finished assets and step metadata.

Layout (default `.storyc/cache/` beside the story):
    objects/<h[:2]>/<h>        asset bytes, named by their sha256
    steps/<k[:2]>/<k>.json     one finished step: its files (out-relative path → sha256),
                               output roles, scores and counters, keyed by the step's cache key
    calls/<k[:2]>/<k>.json     one finished paid call inside a step (so a crash mid-loop
                               loses only the calls in flight)

Every write is atomic (store/fsutil.py: temp file in the same folder + rename): a killed build leaves
either the old file or the new one, never a partial one. A lookup verifies that every
blob it returns still hashes to its name; a corrupt blob is removed and the entry misses
(it will be rebuilt). Because of that verification the cache skips fsync (6 ms a write
here, several per call): a power cut can only turn entries into misses, never into
wrong answers. state.json, which is not verifiable that way, is fsynced.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from storyc.hashing import bytes_sha256, canonical_json, file_sha256, is_sha256
from storyc.store.fsutil import atomic_copy, atomic_write_bytes, flock, open_lock_file, remove_stale_temps

# ─── who is using a cache (builds share it; prune needs it alone) ─────────────

USE_LOCK_FILE = ".storyc-cache.lock"


class CacheBusy(Exception):
    """A build is using the cache, so it cannot be pruned now."""


@contextlib.contextmanager
def cache_in_use(root: str | Path, *, exclusive: bool = False) -> Iterator[None]:
    """Hold a flock on `<cache>/.storyc-cache.lock` for the block. Builds hold it shared
    (any number of builds of any stories at once); `storyc cache prune` holds it exclusive
    and refuses at once (CacheBusy) while a build of any story, on any machine sharing the
    folder through a file system with locks, is reading or writing the cache. The kernel
    drops the lock when the process dies."""
    root = Path(root)
    if exclusive and not root.is_dir():
        yield  # nothing to prune, and no folder is created for it
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = open_lock_file(root / USE_LOCK_FILE)
    except OSError as exc:
        if exclusive or exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        fd = None  # a cache this process cannot write (a read-only mount): it only reads it
    if fd is None:
        yield
        return
    try:
        if exclusive:
            if not flock(fd, exclusive=True, wait=False):
                raise CacheBusy(f"a storyc build is using the cache {root}; prune after it finishes")
        else:
            flock(fd, exclusive=False, wait=True)  # waits only while a prune runs (well under a second)
        yield
    finally:
        os.close(fd)  # closing drops the lock


# ─── the store ────────────────────────────────────────────────────────────────


class Cache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.steps = self.root / "steps"
        self.calls = self.root / "calls"
        # Blobs already verified in this process: sha → (size, mtime_ns). Saves re-hashing.
        self._verified: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    # blobs
    def blob_path(self, sha: str) -> Path:
        return self.objects / sha[:2] / sha

    def put_file(self, src: str | Path, sha: str | None = None) -> str:
        """Store a file's bytes; returns its sha256. Idempotent."""
        src = Path(src)
        sha = sha or file_sha256(src)
        dest = self.blob_path(sha)
        if not self.has_blob(sha):
            atomic_copy(src, dest, durable=False)
            self._remember(sha, dest)
        return sha

    def put_bytes(self, data: bytes) -> str:
        sha = bytes_sha256(data)
        dest = self.blob_path(sha)
        if not self.has_blob(sha):
            atomic_write_bytes(dest, data, durable=False)
            self._remember(sha, dest)
        return sha

    def _remember(self, sha: str, path: Path) -> None:
        st = path.stat()
        with self._lock:
            self._verified[sha] = (st.st_size, st.st_mtime_ns)

    def has_blob(self, sha: str) -> bool:
        """True when the blob exists and its bytes hash to `sha` (a corrupt blob is removed)."""
        if not is_sha256(sha):
            return False
        path = self.blob_path(sha)
        try:
            st = path.stat()
        except OSError:
            return False
        if self._verified.get(sha) == (st.st_size, st.st_mtime_ns):
            return True
        if file_sha256(path) != sha:
            path.unlink(missing_ok=True)
            return False
        with self._lock:
            self._verified[sha] = (st.st_size, st.st_mtime_ns)
        return True

    def materialize(self, sha: str, dest: str | Path) -> None:
        """Put blob `sha` at `dest` (atomically), unless `dest` already holds those bytes."""
        dest = Path(dest)
        try:
            if dest.stat().st_size == self.blob_path(sha).stat().st_size and file_sha256(dest) == sha:
                return
        except OSError:
            pass
        atomic_copy(self.blob_path(sha), dest, durable=False)

    # metadata entries
    def _entry_path(self, table: Path, key: str) -> Path:
        return table / key[:2] / f"{key}.json"

    def _get(self, table: Path, key: str) -> dict[str, Any] | None:
        if not is_sha256(key):
            return None
        path = self._entry_path(table, key)
        try:
            entry = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key:
            return None
        if not all(self.has_blob(sha) for sha in entry.get("files", {}).values()):
            return None
        return entry

    def _put(self, table: Path, key: str, entry: dict[str, Any]) -> None:
        entry = dict(entry, key=key)
        for sha in entry.get("files", {}).values():
            if not self.blob_path(sha).exists():
                raise ValueError(f"cache entry {key[:12]} names a blob that is not stored")
        atomic_write_bytes(self._entry_path(table, key), canonical_json(entry), durable=False)

    def get_step(self, key: str) -> dict[str, Any] | None:
        return self._get(self.steps, key)

    def put_step(self, key: str, entry: dict[str, Any]) -> None:
        self._put(self.steps, key, entry)

    def get_call(self, key: str) -> dict[str, Any] | None:
        return self._get(self.calls, key)

    def put_call(self, key: str, entry: dict[str, Any]) -> None:
        self._put(self.calls, key, entry)

    def clean_temps(self) -> int:
        return sum(remove_stale_temps(folder) for folder in self.tables())

    # listing (for `storyc cache prune`)
    def tables(self) -> tuple[Path, Path, Path]:
        return (self.objects, self.steps, self.calls)

    def list_blobs(self) -> dict[str, Path]:
        """sha → path of every blob (by name; contents are not verified)."""
        return {p.name: p for p in _shard_files(self.objects) if is_sha256(p.name)}

    def list_entries(self, table: str) -> dict[str, tuple[Path, dict[str, Any] | None]]:
        """key → (path, parsed entry or None when unreadable) of every steps/ or calls/ entry."""
        folder = {"steps": self.steps, "calls": self.calls}[table]
        out: dict[str, tuple[Path, dict[str, Any] | None]] = {}
        for path in _shard_files(folder):
            key = path.name[: -len(".json")] if path.name.endswith(".json") else ""
            if not is_sha256(key):
                continue
            try:
                entry = json.loads(path.read_bytes())
            except (OSError, ValueError):
                entry = None
            files = entry.get("files", {}) if isinstance(entry, dict) else None
            if (
                not isinstance(entry, dict)
                or entry.get("key") != key
                or not isinstance(files, dict)
                or not all(isinstance(sha, str) for sha in files.values())
            ):
                entry = None  # a miss for every build: garbage
            out[key] = (path, entry)
        return out


def _shard_files(folder: Path) -> list[Path]:
    """The files of `folder/<xx>/...` (temp files excluded: they start with a dot)."""
    if not folder.is_dir():
        return []
    return [
        p
        for shard in folder.iterdir()
        if shard.is_dir() and not shard.is_symlink()
        for p in shard.iterdir()
        if not p.name.startswith(".") and p.is_file() and not p.is_symlink()
    ]


def default_cache_dir(story_path: Path) -> Path:
    return Path(story_path).resolve().parent / ".storyc" / "cache"
