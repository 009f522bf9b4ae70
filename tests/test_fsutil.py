"""storyc.store.fsutil: atomic writes, temp-file sweeping and lock files, on real files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from storyc.store.fsutil import (
    atomic_copy,
    atomic_output,
    atomic_write_json,
    flock,
    lock_holder,
    new_file_mode,
    open_lock_file,
    remove_stale_temps,
    stale_temps,
    temp_path_for,
)

pytestmark = pytest.mark.unit


def _dead_pid() -> int:
    return int(
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    )


def test_a_temp_file_is_hidden_beside_its_destination_and_keeps_its_suffix(tmp_path):
    dest = tmp_path / "videos" / "scene_1.mp4"
    tmp = temp_path_for(dest)
    assert tmp.parent == dest.parent and tmp.exists() and tmp.stat().st_size == 0
    assert tmp.name.startswith(f".scene_1.mp4.{os.getpid()}.") and tmp.name.endswith(".tmp.mp4")
    assert oct(tmp.stat().st_mode & 0o777) == oct(new_file_mode())  # not mkstemp's 0600


def test_atomic_output_replaces_on_success_and_leaves_the_old_file_on_error(tmp_path):
    dest = tmp_path / "frame.jpg"
    with atomic_output(dest) as tmp:
        tmp.write_bytes(b"one")
    assert dest.read_bytes() == b"one"
    with pytest.raises(RuntimeError), atomic_output(dest, durable=True) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert dest.read_bytes() == b"one"
    assert [p.name for p in tmp_path.iterdir()] == ["frame.jpg"]


def test_atomic_json_and_copy(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"b": 1, "a": "é"})
    assert (tmp_path / "a.json").read_text(encoding="utf-8") == '{\n  "a": "é",\n  "b": 1\n}\n'
    atomic_copy(tmp_path / "a.json", tmp_path / "sub" / "b.json", durable=False)
    assert (tmp_path / "sub" / "b.json").read_bytes() == (tmp_path / "a.json").read_bytes()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.json", "b.json", "sub"]


def test_sweeping_takes_dead_writers_temps_of_every_kind_and_nothing_else(tmp_path):
    dead = _dead_pid()
    media_temp = tmp_path / "videos" / f".scene_1.mp4.{dead}.k2x9_q0a.tmp.mp4"
    blob_temp = tmp_path / "objects" / "ab" / f".abcd.{dead}.0a1b2c3d.tmp"
    live = tmp_path / "videos" / f".scene_2.mp4.{os.getpid()}.abcd1234.tmp.mp4"
    others = [tmp_path / ".storyc.lock", tmp_path / "videos" / "scene_1.mp4", tmp_path / ".notes.tmp"]
    for path in [media_temp, blob_temp, live, *others]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert sorted(stale_temps(tmp_path)) == sorted([media_temp, blob_temp])
    assert remove_stale_temps(tmp_path) == 2
    assert live.exists() and all(p.exists() for p in others)
    # a caller holding the folder's lock removes every temp, even one naming a live pid
    assert remove_stale_temps(tmp_path, any_writer=True) == 1
    assert not live.exists() and all(p.exists() for p in others)
    assert remove_stale_temps(tmp_path / "missing") == 0


def test_lock_holder_sees_an_exclusive_lock_and_creates_nothing(tmp_path):
    path = tmp_path / ".storyc.lock"
    assert lock_holder(path) is None and not path.exists()
    fd = open_lock_file(path)
    try:
        assert flock(fd, exclusive=True, wait=False)
        os.write(fd, b"4242")
        assert lock_holder(path) == "4242"  # a second open file description is refused
        other = open_lock_file(path)
        try:
            assert not flock(other, exclusive=False, wait=False)
        finally:
            os.close(other)
    finally:
        os.close(fd)
    assert lock_holder(path) is None


def test_a_lock_file_is_never_opened_through_a_link(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep")
    (tmp_path / ".lock").symlink_to(target)
    with pytest.raises(OSError):
        open_lock_file(tmp_path / ".lock")
    assert lock_holder(tmp_path / ".lock") is None and target.read_text() == "keep"
