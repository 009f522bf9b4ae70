"""Canonical keys and the content-addressed cache: hits, misses, corruption, atomicity."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storyc.hashing import canonical_json, digest, file_sha256
from storyc.store.cache import Cache
from storyc.store.fsutil import atomic_write_bytes, remove_stale_temps


@pytest.mark.unit
def test_canonical_json_ignores_key_order_and_refuses_unstable_types():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 1.5})
    assert canonical_json({"b": 1, "a": Path("x/y")}) == b'{"a":"x/y","b":1}'
    with pytest.raises(TypeError):
        digest({"names": {"Ember", "Sage"}})  # set order differs between processes
    with pytest.raises(ValueError):
        digest({"x": float("nan")})


@pytest.mark.integration
def test_digest_is_stable_across_processes():
    value = {"prompt": "Ember — fox", "refs": ["a", "b"], "n": 3}
    code = f"from storyc.hashing import digest; print(digest({value!r}))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == digest(value)


def _entry(cache: Cache, tmp_path: Path, content: bytes = b"frame bytes") -> tuple[str, dict, str]:
    src = tmp_path / "frame.jpg"
    src.write_bytes(content)
    sha = cache.put_file(src)
    entry = {
        "step": "keyframe:1",
        "files": {"keyframes/scene_1_v1.jpg": sha},
        "outputs": {"keyframe": "keyframes/scene_1_v1.jpg"},
    }
    key = digest({"k": content.decode()})
    return key, entry, sha


@pytest.mark.unit
def test_hit_miss_and_layout(tmp_path):
    cache = Cache(tmp_path / "cache")
    key, entry, sha = _entry(cache, tmp_path)
    assert cache.get_step(key) is None  # miss before put
    cache.put_step(key, entry)
    got = cache.get_step(key)
    assert got["files"] == entry["files"] and got["key"] == key
    assert cache.blob_path(sha) == tmp_path / "cache" / "objects" / sha[:2] / sha
    assert (tmp_path / "cache" / "steps" / key[:2] / f"{key}.json").is_file()
    assert cache.get_step("0" * 64) is None and cache.get_step("not-a-key") is None
    # materialize copies the blob out, and leaves a matching file alone
    dest = tmp_path / "out" / "keyframes" / "scene_1_v1.jpg"
    cache.materialize(sha, dest)
    assert file_sha256(dest) == sha
    mtime = dest.stat().st_mtime_ns
    cache.materialize(sha, dest)
    assert dest.stat().st_mtime_ns == mtime


@pytest.mark.unit
def test_a_corrupt_blob_is_a_miss_and_is_removed(tmp_path):
    cache = Cache(tmp_path / "cache")
    key, entry, sha = _entry(cache, tmp_path)
    cache.put_step(key, entry)
    blob = cache.blob_path(sha)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"frame bytez")  # same size, other bytes
    fresh = Cache(tmp_path / "cache")  # a new process: nothing verified yet
    assert fresh.get_step(key) is None
    assert not blob.exists()


@pytest.mark.unit
def test_a_truncated_metadata_file_is_a_miss(tmp_path):
    cache = Cache(tmp_path / "cache")
    key, entry, _ = _entry(cache, tmp_path)
    cache.put_step(key, entry)
    path = tmp_path / "cache" / "steps" / key[:2] / f"{key}.json"
    path.write_bytes(path.read_bytes()[:10])
    assert cache.get_step(key) is None


@pytest.mark.unit
def test_entries_must_name_stored_blobs(tmp_path):
    cache = Cache(tmp_path / "cache")
    with pytest.raises(ValueError):
        cache.put_step(digest("k"), {"files": {"a.jpg": "f" * 64}, "outputs": {}})


@pytest.mark.unit
def test_call_memo_round_trip(tmp_path):
    cache = Cache(tmp_path / "cache")
    key = digest({"call": 1})
    cache.put_call(key, {"files": {}, "score": {"overall_score": 0.9}})
    assert cache.get_call(key)["score"]["overall_score"] == 0.9
    assert cache.get_step(key) is None  # separate tables


@pytest.mark.unit
def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    dest = tmp_path / "d" / "state.json"
    atomic_write_bytes(dest, b"one")
    atomic_write_bytes(dest, b"two")
    assert dest.read_bytes() == b"two"
    assert [p.name for p in dest.parent.iterdir()] == ["state.json"]


@pytest.mark.integration
def test_stale_temps_of_dead_processes_are_removed(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)
    stale = tmp_path / f".blob.{dead_pid}.abcd1234.tmp"
    live = tmp_path / f".blob.{os.getpid()}.abcd1234.tmp"
    stale.write_bytes(b"partial")
    live.write_bytes(b"being written")
    assert remove_stale_temps(tmp_path) == 1
    assert not stale.exists() and live.exists()
