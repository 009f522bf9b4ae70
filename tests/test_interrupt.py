"""Ctrl-C, the build lock, and an output folder that cannot be written (issue 5).

- Ctrl-C (SIGINT to the process group of a running `storyc build`, as a terminal sends
  it; subprocess, simulated latencies): exit code 130 (how fast: bench/reliability.py),
  one line saying how to resume (with the same --out/--cache), the call in flight is
  finished and recorded, state.json saved; the resumed build (the printed command, as
  is) finishes, matches an uninterrupted build byte for byte and pays nothing twice.
- A second build of the same story while the first runs: refused at once with a clear
  message naming the holder, nothing written; the first build and the cache are intact.
- A read-only output folder and a full one: a clear one-line error and exit 1, never a
  traceback; after a full disk is given room again, the resumed build completes.
  Real mechanisms: tests run as root, where chmod does not stop writes, so the read-only
  and the full folder are small tmpfs mounts (`mount -t tmpfs -o ro` / `-o size=...`);
  where mounting is not permitted those two cases fall back to a path below a regular
  file (NotADirectory) and to an injected ENOSPC.

Budget: 2 full subprocess builds (+1 refused at once, before Prefect), the rest in-process.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
import _crashkit as ck
from conftest import RELIABILITY_SCENES as SCENES
from storyc.hashing import file_sha256

runner = CliRunner()


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    from storyc.backends.offline import faults as offline_faults

    monkeypatch.setenv("STORYC_RENDER_SCALE", "0.1")
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    monkeypatch.delenv(offline_faults.FAULTS_ENV, raising=False)
    monkeypatch.delenv(offline_faults.LATENCY_ENV, raising=False)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ─── Ctrl-C and the lock ────────────────────────────────────────────────────


@pytest.mark.integration
@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_a_second_build_is_refused(reliability_reference, tmp_path):
    story = tmp_path / "story.yaml"
    story.write_text(ck.make_story(SCENES))
    out, cache, log = tmp_path / "out", tmp_path / "cache", tmp_path / "calls.log"
    mark = f"sigint-{os.getpid()}"
    first = ck.start_build(story, out, cache, ck.build_env(log, mark), tmp_path / "logs", "first")
    assert ck.first_call_of(log, first.pid, first), ck.finish(first)
    assert ck.wait_for_line(out / "state.json", '"status": "done"', 30, first)  # a step has finished

    # the second build of the same story and output folder is refused at once (its time is
    # measured by bench/reliability.py)
    state_before = (out / "state.json").read_bytes()
    second = ck.start_build(story, out, cache, ck.build_env(log, mark + "-second"), tmp_path / "logs", "second")
    code, stdout, stderr = ck.finish(second, timeout_s=60)
    assert code == 1, stderr
    assert _last_line(stderr) == (
        f"storyc build: another storyc build (pid {first.pid}) is writing {out}; "
        "wait for it to finish or use --out for a different folder"
    )
    assert "Traceback" not in stderr + stdout
    assert second.pid not in ck.read_call_log(log)["by_pid"]  # it called nothing
    assert first.poll() is None  # and the first build goes on

    # Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group (the build
    # leads its own group here). The build runs in the warm engine's fork, which `storyc
    # build` passes the signal to (with STORYC_ENGINE=off: in the process itself); Prefect's
    # server and ffmpeg run in their own sessions, so they are not hit: the render in flight
    # finishes, the server stays up.
    os.killpg(first.pid, signal.SIGINT)
    code, stdout, stderr = ck.finish(first, timeout_s=60)  # how fast it stops: bench/reliability.py
    assert code == 130, stderr
    assert "Traceback" not in stderr + stdout, stderr
    message = _last_line(stderr)
    assert message.startswith("storyc build: interrupted (") and "; state saved. Resume with: storyc build " in message
    assert f"--out {out}" in message and f"--cache {cache}" in message

    # in-flight work was finished and recorded: every call started has its result in the cache
    started, durable = ck.read_call_log(log)["by_pid"][first.pid]
    assert 0 < started == durable
    state = json.loads((out / "state.json").read_text())
    statuses = {sid: rec["status"] for sid, rec in state["steps"].items()}
    assert "done" in statuses.values()
    assert all(rec["error"] == "interrupted" for rec in state["steps"].values() if rec["status"] == "failed")
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "interrupted" and report["api_calls_total"] == started
    check = ck.verify_tree(out, cache)
    assert check["corrupt"] == [] and check["temps"] == [] and state_before  # (the refused build wrote nothing)

    # no process of the interrupted build is left (its watchdog and ffmpeg; with
    # STORYC_ENGINE=off, its temporary Prefect server)
    left = ck.leftover_processes(mark, grace_s=8.0)
    ck.kill_all(left)
    assert left == []

    # resume with exactly the printed command
    resume = shlex.split(message.split("Resume with: ", 1)[1])
    assert resume[:2] == ["storyc", "build"]
    proc = subprocess.run(
        ck.storyc_cmd(*resume[1:]),
        env=ck.build_env(log, mark + "-resume"),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert file_sha256(out / "final_video.mp4") == reliability_reference["final"]
    total = ck.read_call_log(log)["started"]
    assert total == reliability_reference["calls"]  # Ctrl-C cost no call at all
    final = ck.verify_tree(out, cache)
    assert final["corrupt"] == [] and final["temps"] == []
    assert ck.leftover_processes(mark + "-resume", grace_s=4.0) == []


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c(tmp_path):
    # CI runners and `timeout` cancel with SIGTERM to the build's pid alone.
    story = tmp_path / "story.yaml"
    story.write_text(ck.make_story(SCENES))
    out, cache, log = tmp_path / "out", tmp_path / "cache", tmp_path / "calls.log"
    mark = f"sigterm-{os.getpid()}"
    build = ck.start_build(story, out, cache, ck.build_env(log, mark), tmp_path / "logs", "term")
    assert ck.first_call_of(log, build.pid, build), ck.finish(build)
    assert ck.wait_for_line(out / "state.json", '"status": "done"', 30, build)
    os.kill(build.pid, signal.SIGTERM)
    code, stdout, stderr = ck.finish(build, timeout_s=60)
    assert code == 130, stderr
    assert "Traceback" not in stderr + stdout
    assert "; state saved. Resume with: storyc build " in _last_line(stderr)
    started, durable = ck.read_call_log(log)["by_pid"][build.pid]
    assert 0 < started == durable  # the calls in flight finished and were recorded
    assert ck.verify_tree(out, cache)["corrupt"] == []
    left = ck.leftover_processes(mark, grace_s=8.0)
    ck.kill_all(left)
    assert left == []


# Ctrl-C the moment the assembly's ffmpeg starts: the process signals itself from an audit
# hook (Python's own "subprocess.Popen" event), as a terminal's Ctrl-C would arrive then.
_CTRL_C_AT_ASSEMBLY = """
import os, signal, sys
def hook(event, args):
    if event == "subprocess.Popen" and "-filter_complex" in list(args[1]):
        os.kill(os.getpid(), signal.SIGINT)
sys.addaudithook(hook)
from storyc.cli.app import main
sys.argv[0] = "storyc"
main()
"""


@pytest.mark.integration
@pytest.mark.slow
def test_ctrl_c_during_the_assembly_says_interrupted(reliability_reference, tmp_path):
    # a transition edit: only the assembly and the storyboard run (in this process, no Prefect)
    story = tmp_path / "story.yaml"
    story.write_text(reliability_reference["story"].read_text().replace("transition: cut", "transition: crossfade", 1))
    assert story.read_text() != reliability_reference["story"].read_text()
    cache = tmp_path / "cache"
    shutil.copytree(reliability_reference["story"].parent / "cache", cache)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", _CTRL_C_AT_ASSEMBLY, "build", str(story), "--out", str(out), "--cache", str(cache)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "STORYC_RENDER_SCALE": "0.1", "NO_COLOR": "1"},
    )
    assert proc.returncode == 130, proc.stderr
    assert "KeyboardInterrupt" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    assert "stopped assemble" in proc.stdout and "failed" not in proc.stdout
    assert _last_line(proc.stderr).startswith("storyc build: interrupted (")
    state = json.loads((out / "state.json").read_text())
    assert state["steps"]["assemble"]["status"] == "failed" and state["steps"]["assemble"]["error"] == "interrupted"
    assert not (out / "final_video.mp4").exists() and ck.verify_tree(out, cache)["temps"] == []  # nothing half-written


@pytest.mark.unit
def test_a_backend_that_cannot_start_leaves_no_output_folder(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from storyc.cli.app import app

    story = tmp_path / "story.yaml"
    story.write_text(ck.make_story(2))
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["build", str(story), "--backend", "xai", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "XAI_API_KEY" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.unit
def test_the_lock_refuses_in_process_and_is_released_after(tmp_path):
    """The same rule without a subprocess: while a lock holder lives, build refuses; the
    refusal neither writes nor deletes anything; after release the folder is usable."""
    from storyc.store.state import BuildLock

    story = tmp_path / "story.yaml"
    story.write_text(ck.make_story(1))
    out = tmp_path / "out"
    with BuildLock(out):
        before = sorted(p.name for p in out.iterdir())
        r = runner.invoke(app_(), ["build", str(story), "--out", str(out), "--cache", str(tmp_path / "c"), "--dry-run"])
        # a dry run writes nothing and takes no lock
        assert r.exit_code == 0, r.output
        r = runner.invoke(
            app_(),
            ["build", str(story), "--out", str(out), "--cache", str(tmp_path / "c"), "--select", "character:Ava"],
        )
        assert r.exit_code == 1
        assert f"another storyc build (pid {os.getpid()}) is writing {out}" in r.output
        assert r.exception is None or isinstance(r.exception, SystemExit)
        assert sorted(p.name for p in out.iterdir()) == before and not (tmp_path / "c").exists()
    with BuildLock(out):  # released: the next build may take it
        pass


@pytest.mark.unit
def test_a_lock_file_that_is_a_link_is_refused_and_its_target_kept(tmp_path):
    story = tmp_path / "story.yaml"
    story.write_text(ck.make_story(1))
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (out / ".storyc.lock").symlink_to(target)
    r = runner.invoke(app_(), ["build", str(story), "--out", str(out), "--cache", str(tmp_path / "c")])
    assert r.exit_code == 1 and "is a symbolic link" in r.output, r.output
    assert target.read_text() == "keep me" and not (tmp_path / "c").exists()


def app_():
    from storyc.cli.app import app

    return app


# ─── read-only and full output folders ──────────────────────────────────────


@contextlib.contextmanager
def _tmpfs(where: Path, options: str):
    """A small tmpfs at `where` (root and CAP_SYS_ADMIN needed), or None."""
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "storyc-test", str(where)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _assert_clear_error(result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [
        line for line in result.output.splitlines() if line.startswith("storyc build: ") and "backend" not in line
    ]
    assert errors, result.output
    for needle in needles:
        assert needle in errors[-1], result.output
    return errors[-1]


@pytest.mark.unit
def test_output_folder_below_a_file_is_a_clear_error(tmp_path):
    story = tmp_path / "story.yaml"
    story.write_text(ck.make_story(1))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    r = runner.invoke(app_(), ["build", str(story), "--out", str(blocker / "out"), "--cache", str(tmp_path / "c")])
    _assert_clear_error(r, f"{blocker} is a file, so no folder can be made inside it")


@pytest.mark.integration
@pytest.mark.slow
def test_read_only_output_folder_is_a_clear_error(tmp_path):
    story = tmp_path / "story.yaml"
    story.write_text(ck.make_story(1))
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as mounted:
        if mounted is None:
            pytest.skip("mounting a read-only tmpfs is not permitted here; covered by the NotADirectory case")
        r = runner.invoke(app_(), ["build", str(story), "--out", str(mounted / "out"), "--cache", str(tmp_path / "c")])
        _assert_clear_error(r, "Read-only file system", str(mounted / "out"))
        # and a read-only cache folder (with a writable output folder) is as clear
        r = runner.invoke(app_(), ["build", str(story), "--out", str(tmp_path / "out"), "--cache", str(mounted / "c")])
        _assert_clear_error(r, "Read-only file system")


@pytest.mark.integration
@pytest.mark.slow
def test_a_read_only_cache_that_holds_every_step_still_restores_a_build(reliability_reference, tmp_path):
    # e.g. a team's cache mounted read-only on a reviewer's machine: nothing to write, so no
    # lock file can be made there, and the build still restores every step from it
    reference_cache = reliability_reference["story"].parent / "cache"
    with _tmpfs(tmp_path / "ro", "size=64m") as mounted:
        if mounted is None:
            pytest.skip("mounting a tmpfs is not permitted here")
        shutil.copytree(reference_cache, mounted / "cache")
        (mounted / "cache" / ".storyc-cache.lock").unlink(missing_ok=True)
        subprocess.run(["mount", "-o", "remount,ro", str(mounted)], check=True)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STORYC_RENDER_SCALE", "0.1")
            r = runner.invoke(
                app_(),
                [
                    "build",
                    str(reliability_reference["story"]),
                    "--out",
                    str(tmp_path / "out"),
                    "--cache",
                    str(mounted / "cache"),
                ],
            )
        assert r.exit_code == 0, r.output
        assert "up to date" in r.output and "0 API calls" in r.output
        assert file_sha256(tmp_path / "out" / "final_video.mp4") == reliability_reference["final"]


@pytest.mark.integration
@pytest.mark.slow
def test_full_output_folder_is_a_clear_error_and_resumes_when_room_is_made(
    reliability_reference, tmp_path, monkeypatch
):
    story = tmp_path / "story.yaml"
    story.write_text(ck.make_story(SCENES))
    cache = tmp_path / "cache"
    with _tmpfs(tmp_path / "full", "size=96k") as mounted:
        if mounted is None:  # no mount here: the same failure, injected where assets are written
            from storyc.media import ffmpeg as media

            real_save = media.save_jpeg
            writes = []

            def full_disk(image, dest):
                writes.append(dest)
                if len(writes) > 4:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dest))
                return real_save(image, dest)

            monkeypatch.setattr(media, "save_jpeg", full_disk)
            out = tmp_path / "out"
        else:
            out = mounted / "out"
        r = runner.invoke(app_(), ["build", str(story), "--out", str(out), "--cache", str(cache)])
        line = _assert_clear_error(r, "No space left on device")
        assert len(line) < 2000
        assert f": {out}/" in line and str(cache) not in line  # the file that did not fit, in the output folder
        # what was written is complete; nothing half-written stays behind
        check = ck.verify_tree(out, cache)
        assert check["corrupt"] == [], check
        # room again (the tmpfs grows / the injection stops): the same command completes
        if mounted is not None:
            subprocess.run(["mount", "-o", "remount,size=64m", str(mounted)], check=True)
        else:
            monkeypatch.setattr(media, "save_jpeg", real_save)
        r = runner.invoke(app_(), ["build", str(story), "--out", str(out), "--cache", str(cache)])
        assert r.exit_code == 0, r.output
        assert file_sha256(out / "final_video.mp4") == reliability_reference["final"]
        final = ck.verify_tree(out, cache)
        assert final["corrupt"] == [] and final["temps"] == []
    # restoring that build from the cache into a folder on a full disk: the error names the
    # output folder, not the cache's blob the copy read from
    with _tmpfs(tmp_path / "small", "size=48k") as small:
        if small is None:
            return  # the injected case above already named the output file
        r = runner.invoke(app_(), ["build", str(story), "--out", str(small / "out"), "--cache", str(cache)])
        line = _assert_clear_error(r, "No space left on device")
        assert f": {small / 'out'}/" in line and str(cache) not in line, line


# ─── one cache, several builds at once ───────────────────────────────────────


def _cache_writer(root: str, seed: int, rounds: int) -> None:
    """What a build does to the cache, many times over: store blobs, call memos and step
    entries (the same keys and bytes another build of the same story writes), read them back."""
    import random

    from storyc.hashing import bytes_sha256
    from storyc.store.cache import Cache

    rng = random.Random(seed)
    cache = Cache(Path(root))
    for n in range(rounds):
        i = rng.randrange(12)
        data = (f"asset {i} " * (2000 + i * 500)).encode()
        src = Path(root).parent / f"src-{os.getpid()}-{i}"
        src.write_bytes(data)
        sha = cache.put_file(src)
        assert sha == bytes_sha256(data)
        key = bytes_sha256(f"step {i}".encode())
        cache.put_call(key, {"files": {f"keyframes/scene_{i}_v1.jpg": sha}, "kind": "image"})
        cache.put_step(key, {"step": f"keyframe:{i}", "files": {f"keyframes/scene_{i}_v1.jpg": sha}, "outputs": {}})
        entry = cache.get_step(bytes_sha256(f"step {rng.randrange(12)}".encode()))
        assert entry is None or all(cache.has_blob(s) for s in entry["files"].values())
        if n % 10 == 0:
            cache.clean_temps()  # what every build does when it starts


@pytest.mark.integration
def test_builds_sharing_one_cache_never_corrupt_it(tmp_path):
    """Several builds (different output folders, so no lock between them) write the same
    content-addressed entries at once: every write is atomic, a build's start-up clean-up
    removes only dead processes' temps, so the cache ends complete and consistent."""
    import multiprocessing

    root = tmp_path / "cache"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_cache_writer, args=(str(root), seed, 60)) for seed in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    check = ck.verify_tree(tmp_path / "no-out", root)
    assert check["corrupt"] == [] and check["temps"] == [] and check["files"] >= 3 * 12
