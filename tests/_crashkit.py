"""Shared machinery of the crash/interrupt tests and the reliability benchmarks.

- `storyc_cmd(...)`: the argv of a real `storyc build` in a subprocess, run through this
  file as a thin wrapper (`python tests/_crashkit.py build ...`) that counts paid calls:
  every offline backend call appends `S <kind>` to $STORYC_CALL_LOG when it starts, and
  `D <kind>` once its result is durable (its per-call memo is in the cache). A SIGKILLed
  build writes no report.json, so this log is how its paid calls are counted; the calls
  in flight at a kill are the S lines without a D line in that run.
- `verify_tree(out, cache)`: every file in the output folder and the cache is complete
  and matches its recorded hash (cache blobs by name, cache step/call entries, state.json
  sha256 entries); temp files are listed separately.
- `marked_processes(mark)`: processes (Prefect's temporary server, ffmpeg, the watchdog)
  that carry our environment marker, i.e. that a storyc build of this run started.
- `make_story(n_scenes)`: a generated story (2 characters, chained scenes, 3 s clips).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve()
CALL_LOG_ENV = "STORYC_CALL_LOG"
MARK_ENV = "STORYC_CRASH_MARK"
LATENCY = "image=0.3,video=1.0,chat=0.1"

_TEMP = re.compile(r"^\..+\.(tmp(\.\w+)?|part)$")  # atomic-write temps: cache, media, downloads


# ─── stories ─────────────────────────────────────────────────────────────────

_SETTINGS = [
    "harbour pier at dawn",
    "harbour market at noon",
    "harbour lighthouse at dusk",
    "harbour beach at night",
    "harbour boat deck in the rain",
    "harbour cliff path at sunrise",
]
_CAMERAS = [
    "wide shot, slow pan",
    "medium shot, push in",
    "close-up, static",
    "wide shot, orbit",
    "medium shot, dolly forward",
    "wide shot, static",
]
_MOODS = ["calm", "warm golden light", "moody blue", "mysterious", "tense", "hopeful"]


def make_story(n_scenes: int = 2, *, title: str = "Harbour reliability") -> str:
    """A valid story: Ava and Bo; scene 1 starts fresh, every later scene chains from the
    previous one (so a kill anywhere interrupts a real chain); every 3rd scene crossfades."""
    lines = [
        f"title: {title}",
        "style: flat vector illustration with bold outlines and soft pastel shading",
        "color_palette: teal, coral, cream",
        "characters:",
        "  - {name: Ava, role: protagonist, visual_description: a tall woman with short red hair and a yellow"
        " raincoat, personality_cues: [bold]}",
        "  - {name: Bo, role: supporting, visual_description: a small boy with curly black hair and a blue"
        " striped shirt, personality_cues: [shy]}",
        "scenes:",
    ]
    for i in range(1, n_scenes + 1):
        who = "[Ava]" if i == 1 else "[Ava, Bo]" if i % 2 == 0 else "[Bo, Ava]"
        transition = "crossfade" if i % 3 == 0 else "cut"
        lines.append(
            f"  - {{scene_id: {i}, title: Scene {i} on the water, description: The friends go on in scene {i}.,"
            f' characters_present: {who}, setting: {_SETTINGS[(i - 1) % 6]}, camera: "{_CAMERAS[(i - 1) % 6]}",'
            f" mood: {_MOODS[(i - 1) % 6]}, action: they walk and wave in scene {i}, duration_seconds: 3,"
            f" transition: {transition}}}"
        )
    return "\n".join(lines) + "\n"


# ─── the instrumented `storyc build` ─────────────────────────────────────────


def storyc_cmd(*args: str) -> list[str]:
    """argv of `storyc <args>` in a fresh interpreter, with the paid-call counter."""
    return [sys.executable, str(HERE), *args]


def build_env(
    call_log: Path | None,
    mark: str,
    *,
    scale: str = "0.1",
    latency: str | None = LATENCY,
    faults: str | None = None,
    extra: dict | None = None,
) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XAI_API_KEY", "PREFECT_API_URL", "PREFECT_HOME", "STORYC_WATCHDOG_TAG")
    }
    env.update(
        {
            "STORYC_RENDER_SCALE": scale,
            MARK_ENV: mark,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        }
    )
    # PREFECT_HOME is kept when the caller set it (a warm database starts faster)
    if os.environ.get("PREFECT_HOME"):
        env["PREFECT_HOME"] = os.environ["PREFECT_HOME"]
    if call_log is not None:
        env[CALL_LOG_ENV] = str(call_log)
    env.pop("STORYC_OFFLINE_LATENCY", None)
    env.pop("STORYC_OFFLINE_FAULTS", None)
    if latency:
        env["STORYC_OFFLINE_LATENCY"] = latency
    if faults:
        env["STORYC_OFFLINE_FAULTS"] = faults
    env.update(extra or {})
    return env


def _install_call_counter(log_path: str) -> None:
    """Log storyc's audit events (see tests/_events.py): a try of an offline call starts,
    a paid call's result is durable in the cache."""
    from storyc.store.fsutil import holder_pid

    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    # The build's pid as the user sees it: the `storyc build` process, also when the warm
    # engine runs the build in a fork of itself for that process (storyc.run.engine).
    build_pid = holder_pid()

    def note(line: str) -> None:  # one short O_APPEND write: a kill never leaves half a line
        os.write(fd, f"{line} {build_pid}\n".encode())

    def hook(event: str, args: tuple) -> None:
        if event == "storyc.offline.call_started":
            kind, identity = args
            note(f"S {kind} {identity[:16]}")
        elif event == "storyc.run.call_cached":
            note(f"D {args[2]}")

    sys.addaudithook(hook)


def read_call_log(path: Path) -> dict:
    """{'started': n, 'durable': n, 'by_pid': {pid: (started, durable)}}."""
    by_pid: dict[int, list[int]] = {}
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        text = ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[0] not in ("S", "D"):
            continue
        counts = by_pid.setdefault(int(parts[-1]), [0, 0])
        counts[0 if parts[0] == "S" else 1] += 1
    return {
        "started": sum(c[0] for c in by_pid.values()),
        "durable": sum(c[1] for c in by_pid.values()),
        "by_pid": {pid: tuple(c) for pid, c in by_pid.items()},
    }


# ─── file integrity ──────────────────────────────────────────────────────────


def _sha(path: Path) -> str:
    from storyc.hashing import file_sha256

    return file_sha256(path)


def _complete_media(path: Path) -> str | None:
    """None when the file is a complete image/video/JSON, else what is wrong."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".jpg", ".jpeg", ".png"):
            from PIL import Image

            with Image.open(path) as im:
                im.load()
        elif suffix == ".mp4":
            import av

            with av.open(str(path)) as container:
                frames = sum(1 for _ in container.decode(video=0))
            if frames == 0:
                return "no frames"
        elif suffix == ".json":
            json.loads(path.read_bytes())
        elif path.stat().st_size == 0:
            return "empty"
    except Exception as exc:  # any decode error is a corrupt file
        return f"{type(exc).__name__}: {exc}"
    return None


def verify_tree(out_dir: Path, cache_dir: Path) -> dict:
    """Check every file of the output folder and the cache. Returns
    {'files': n, 'corrupt': [..], 'temps': [..]} — `corrupt` must always be empty; temps
    (hidden atomic-write temp files) may exist right after a kill, never after a build."""
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    corrupt: list[str] = []
    temps: list[str] = []
    files = 0
    recorded: dict[str, str] = {}  # out-relative path → sha256 recorded somewhere

    # the cache: blobs are named by their hash; entries name blobs that exist and match
    for path in sorted(p for p in cache_dir.rglob("*") if p.is_file()):
        files += 1
        rel = path.relative_to(cache_dir).as_posix()
        if _TEMP.match(path.name):
            temps.append(f"cache/{rel}")
            continue
        top = rel.split("/", 1)[0]
        if top == "objects":
            if _sha(path) != path.name:
                corrupt.append(f"cache/{rel}: bytes do not hash to the blob's name")
        elif top in ("steps", "calls"):
            try:
                entry = json.loads(path.read_bytes())
            except ValueError as exc:
                corrupt.append(f"cache/{rel}: not JSON ({exc})")
                continue
            if entry.get("key") != path.stem:
                corrupt.append(f"cache/{rel}: key field does not match the file name")
            for frel, sha in (entry.get("files") or {}).items():
                blob = cache_dir / "objects" / sha[:2] / sha
                if not blob.is_file():
                    corrupt.append(f"cache/{rel}: names missing blob {sha[:12]} for {frel}")
                recorded.setdefault(frel, sha)
                if recorded[frel] != sha:
                    corrupt.append(f"cache/{rel}: {frel} recorded with two different hashes")

    # the output folder: state.json's sha256 entries and every cache-recorded file match
    state_path = out_dir / "state.json"
    if state_path.exists():
        try:
            state = json.loads(state_path.read_bytes())
        except ValueError as exc:
            corrupt.append(f"out/state.json: not JSON ({exc})")
            state = {}
        for sid, rec in (state.get("steps") or {}).items():
            for role, sha in (rec.get("sha256") or {}).items():
                rel = (rec.get("outputs") or {}).get(role)
                if rel is None:
                    continue
                target = out_dir / rel
                if not target.is_file():
                    corrupt.append(f"out/{rel}: recorded by state.json ({sid}) but missing")
                elif _sha(target) != sha:
                    corrupt.append(f"out/{rel}: does not match state.json's sha256 ({sid})")
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()) if out_dir.exists() else []:
        files += 1
        rel = path.relative_to(out_dir).as_posix()
        if _TEMP.match(path.name):
            temps.append(f"out/{rel}")
            continue
        if rel in recorded and _sha(path) != recorded[rel]:
            corrupt.append(f"out/{rel}: does not match the hash recorded in the cache")
            continue
        problem = _complete_media(path) if rel != ".storyc.lock" else None
        if problem:
            corrupt.append(f"out/{rel}: incomplete ({problem})")
    return {"files": files, "corrupt": corrupt, "temps": temps}


# ─── processes ───────────────────────────────────────────────────────────────


def marked_processes(mark: str) -> list[tuple[int, str]]:
    """(pid, cmdline) of live processes whose environment carries MARK_ENV=mark."""
    needle = f"{MARK_ENV}={mark}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # a zombie waiting for its parent to reap it is not running
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        found.append((int(entry), cmd))
    return found


def leftover_processes(mark: str, grace_s: float = 8.0) -> list[tuple[int, str]]:
    """Processes of this mark still alive after `grace_s` (the watchdog needs ~3 s)."""
    deadline = time.monotonic() + grace_s
    while True:
        alive = marked_processes(mark)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.25)


def wait_for_prefect_start(mark: str, proc, timeout_s: float = 90) -> str | None:
    """Wait until the build starts Prefect: the warm build engine it starts (there is none
    yet), or its temporary server (STORYC_ENGINE=off). Returns "engine" or "server", or
    None when the build never did."""
    from storyc.run.engine.home import engine_home
    from storyc.store.fsutil import lock_holder

    home = engine_home()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if lock_holder(home.lock) is not None:
            return "engine"
        if prefect_servers(marked_processes(mark)):
            return "server"
        time.sleep(0.01)
    return None


def prefect_servers(procs: Iterable[tuple[int, str]]) -> list[tuple[int, str]]:
    return [(pid, cmd) for pid, cmd in procs if "prefect" in cmd and "server" in cmd]


def kill_all(procs: Iterable[tuple[int, str]]) -> None:
    for pid, _ in procs:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def wait_for_line(path: Path, needle: str, timeout_s: float, proc=None) -> bool:
    """Wait until `needle` appears in the file at `path` (or the process ends)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if needle in Path(path).read_text():
                return True
        except FileNotFoundError:
            pass
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


# ─── kill / resume rounds ────────────────────────────────────────────────────


def start_build(story: Path, out: Path, cache: Path, env: dict, logs: Path, name: str, *extra: str):
    import subprocess

    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / f"{name}.out", logs / f"{name}.err"
    # the child writes through its own copies of the two files; ours close at once
    with open(out_path, "wb") as stdout, open(err_path, "wb") as stderr:
        proc = subprocess.Popen(
            storyc_cmd("build", str(story), "--out", str(out), "--cache", str(cache), *extra),
            env=env,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            cwd=str(story.parent),
            start_new_session=True,  # our own signals only reach it when we send them
        )
    proc._storyc_logs = (out_path, err_path)  # type: ignore[attr-defined]
    return proc


def finish(proc, timeout_s: float = 300) -> tuple[int, str, str]:
    code = proc.wait(timeout=timeout_s)
    out_path, err_path = proc._storyc_logs
    return code, out_path.read_text(errors="replace"), err_path.read_text(errors="replace")


def first_call_of(log: Path, pid: int, proc, timeout_s: float = 120) -> bool:
    """Wait until process `pid` has started its first paid call."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if read_call_log(log)["by_pid"].get(pid):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def reference_build(work: Path, story: Path, *, scale: str, latency: str | None, mark: str) -> dict:
    """One uninterrupted instrumented build: its final video, paid calls and timings."""
    from storyc.hashing import file_sha256

    log = work / "ref_calls.log"
    t0 = time.monotonic()
    proc = start_build(
        story,
        work / "ref_out",
        work / "ref_cache",
        build_env(log, mark, scale=scale, latency=latency),
        work / "logs",
        "reference",
    )
    first = time.monotonic() - t0 if first_call_of(log, proc.pid, proc) else None
    code, _out, err = finish(proc)
    wall = time.monotonic() - t0
    if code != 0:
        raise RuntimeError(f"reference build failed ({code}): {err[-2000:]}")
    report = json.loads((work / "ref_out" / "report.json").read_text())
    calls = read_call_log(log)
    return {
        "final_sha256": file_sha256(work / "ref_out" / "final_video.mp4"),
        "api_calls_total": report["api_calls_total"],
        "calls_started": calls["started"],
        "wall_s": wall,
        "first_call_s": first or 0.0,
        "verify": verify_tree(work / "ref_out", work / "ref_cache"),
    }


def crash_rounds(
    work: Path,
    story: Path,
    reference: dict,
    *,
    kills: int,
    seed: int,
    scale: str = "0.1",
    latency: str | None = LATENCY,
    startup_kill_share: float = 0.2,
    spawn_kill_share: float = 0.1,
    mark: str = "crash",
    max_runs_per_round: int = 60,
    on_kill=None,
) -> dict:
    """Kill `kills` builds at random moments with SIGKILL, resuming each time, in rounds
    (a round: fresh output and cache, kill/resume until a run completes). Checks after
    every kill and at the end of every round; returns the figures. Kill moments: a share
    while Prefect starts (`startup_kill_share`), a share the instant the temporary Prefect
    server process appears (`spawn_kill_share`, the watchdog's hardest case), the rest at
    a uniform moment of the remaining paid calls."""
    import random

    from storyc.hashing import file_sha256

    rng = random.Random(seed)
    call_phase_s = max(0.5, reference["wall_s"] - reference["first_call_s"])
    fig = {
        "rounds": 0,
        "builds_run": 0,
        "kills": 0,
        "kills_before_first_call": 0,
        "kills_at_server_spawn": 0,
        "resumes": 0,
        "calls_in_flight_at_kills": 0,
        "paid_calls": 0,
        "baseline_calls": 0,
        "extra_paid_calls": 0,
        "assets_lost": 0,
        "corrupt_files": 0,
        "corrupt_examples": [],
        "temp_files_after_kill": 0,
        "temp_files_after_build": 0,
        "leaked_prefect_servers": 0,
        "leaked_processes": 0,
        "leaked_examples": [],
        "identical_final_video": True,
        "failed_runs": 0,
        "kill_moments_s": [],
    }
    killed_marks: list[str] = []
    run_no = 0
    while fig["kills"] < kills:
        fig["rounds"] += 1
        rdir = work / f"round{fig['rounds']}"
        out, cache, log = rdir / "out", rdir / "cache", rdir / "calls.log"
        in_flight_round = 0
        for attempt in range(max_runs_per_round):
            run_no += 1
            run_mark = f"{mark}-{run_no}"
            proc = start_build(
                story,
                out,
                cache,
                build_env(log, run_mark, scale=scale, latency=latency),
                rdir / "logs",
                f"run{attempt + 1}",
            )
            fig["builds_run"] += 1
            if attempt:
                fig["resumes"] += 1
            t0 = time.monotonic()
            want_kill = fig["kills"] < kills
            killed = False
            roll = rng.random()
            if want_kill and roll < spawn_kill_share:
                deadline = time.monotonic() + 120
                while proc.poll() is None and time.monotonic() < deadline:
                    if prefect_servers(marked_processes(run_mark)):
                        killed = True
                        fig["kills_at_server_spawn"] += 1
                        break
                    time.sleep(0.01)
            elif want_kill and roll < spawn_kill_share + startup_kill_share:
                delay = rng.uniform(0.2, max(0.3, reference["first_call_s"]))
                try:
                    proc.wait(timeout=delay)
                except Exception:
                    killed = True
                if killed:
                    fig["kills_before_first_call"] += 1
            elif want_kill and first_call_of(log, proc.pid, proc):
                done = read_call_log(log)["durable"]
                remaining = max(0.05, 1 - done / max(1, reference["api_calls_total"]))
                try:
                    proc.wait(timeout=rng.uniform(0, call_phase_s * remaining))
                except Exception:
                    killed = True
            if killed:
                os.kill(proc.pid, signal.SIGKILL)
                finish(proc)
                fig["kills"] += 1
                fig["kill_moments_s"].append(round(time.monotonic() - t0, 2))
                killed_marks.append(run_mark)
                started, durable = read_call_log(log)["by_pid"].get(proc.pid, (0, 0))
                in_flight_round += started - durable
                check = verify_tree(out, cache)
                fig["corrupt_files"] += len(check["corrupt"])
                fig["corrupt_examples"] += check["corrupt"][:3]
                fig["temp_files_after_kill"] += len(check["temps"])
                if on_kill:
                    on_kill(fig, check)
                continue
            code, _, err = finish(proc)
            if code != 0:
                fig["failed_runs"] += 1
                fig["corrupt_examples"].append(f"run exited {code}: {err.strip().splitlines()[-1:]}")
                continue
            break
        else:
            raise RuntimeError(f"round {fig['rounds']} did not finish in {max_runs_per_round} runs")
        calls = read_call_log(log)
        extra = calls["started"] - reference["calls_started"]
        fig["paid_calls"] += calls["started"]
        fig["baseline_calls"] += reference["calls_started"]
        fig["extra_paid_calls"] += extra
        fig["calls_in_flight_at_kills"] += in_flight_round
        fig["assets_lost"] += max(0, extra - in_flight_round)  # a recorded result paid for again
        if file_sha256(out / "final_video.mp4") != reference["final_sha256"]:
            fig["identical_final_video"] = False
        check = verify_tree(out, cache)
        fig["corrupt_files"] += len(check["corrupt"])
        fig["corrupt_examples"] += check["corrupt"][:3]
        fig["temp_files_after_build"] += len(check["temps"])
    for run_mark in killed_marks:  # the watchdog has had time; give it a little more
        left = leftover_processes(run_mark, grace_s=6.0)
        fig["leaked_processes"] += len(left)
        fig["leaked_prefect_servers"] += len(prefect_servers(left))
        fig["leaked_examples"] += [cmd[:120] for _, cmd in left[:2]]
        kill_all(left)
    fig["corrupt_examples"] = fig["corrupt_examples"][:10]
    return fig


if __name__ == "__main__":  # python tests/_crashkit.py build STORY ...: storyc with the call counter
    if os.environ.get(CALL_LOG_ENV):
        _install_call_counter(os.environ[CALL_LOG_ENV])
    from storyc.cli.app import main

    sys.argv = ["storyc", *sys.argv[1:]]
    main()
