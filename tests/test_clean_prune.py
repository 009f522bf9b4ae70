"""`storyc clean` and `storyc cache prune` on real builds (in-process, the session's Prefect
harness, the counting fake backend, tiny renders).

The module builds two stories that share their characters into one cache, recording for
every per-call entry the key of the step that made it (ground truth the cache itself does
not keep), then checks what prune removes against that truth.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from _events import watch
from _fake_backend import FakeBackend
from storyc.build.options import BuildOptions
from storyc.build.pipeline import run_build
from storyc.build.prepare import prepare
from storyc.cli.app import app
from storyc.graph.resolve import resolve
from storyc.store.cache import Cache
from storyc.store.prune import apply_prune, plan_prune
from storyc.store.state import BuildLock

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCALE = "0.1"
STYLE = "flat vector illustration with bold outlines and soft pastel shading"
CHARACTERS = """\
characters:
  - {name: Ava, role: protagonist, visual_description: a tall woman with short red hair and a yellow raincoat, personality_cues: [bold]}
  - {name: Bo, role: supporting, visual_description: a small boy with curly black hair and a blue striped shirt, personality_cues: [shy]}
"""
STORY_A = f"""\
title: Harbour morning
style: {STYLE}
color_palette: teal, coral, cream
{CHARACTERS}scenes:
  - {{scene_id: 1, title: Ava at the pier, description: Ava walks along the pier., characters_present: [Ava],
     setting: wooden pier at dawn, camera: "wide shot, slow pan", mood: calm, action: Ava walks toward the sea, duration_seconds: 3}}
  - {{scene_id: 2, title: Bo joins Ava, description: Bo runs up to Ava., characters_present: [Ava, Bo],
     setting: wooden pier at dawn, camera: medium shot, mood: warm, action: Bo runs to Ava and waves, duration_seconds: 3}}
"""
EDIT = ("action: Bo runs to Ava and waves", "action: Bo cartwheels to Ava")
CHANGED = {"keyframe:2", "video:2", "assemble", "script"}  # what the edit re-keys in story A
STORY_B = f"""\
title: Harbour evening
style: {STYLE}
color_palette: teal, coral, cream
{CHARACTERS}scenes:
  - {{scene_id: 1, title: Bo at the market, description: Bo looks at the fish stalls., characters_present: [Bo],
     setting: harbour market at dusk, camera: close-up, mood: busy, action: Bo points at a fish, duration_seconds: 3}}
"""
# keyframe 2 of story A goes compose → fix edit (a prompt nobody can predict) → passes
SCORES = {("keyframe:2", "keyframe"): [0.5, 0.9]}


def _story(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "story.yaml"
    path.write_text(text)
    return path


class _CallTruth:
    """Records, for each per-call entry written, the key of the step that made it (from
    storyc's `storyc.run.call_cached` audit event, tests/_events.py)."""

    def __init__(self):
        self.step_of: dict[str, str] = {}

    def __call__(self, event: str, args: tuple) -> None:
        if event == "storyc.run.call_cached":
            call_key, step_key, _kind = args
            self.step_of[call_key] = step_key


@pytest.fixture
def call_truth():
    """A _CallTruth watching every build of the test."""
    with watch(_CallTruth()) as truth:
        yield truth


def _build(story: Path, out: Path, cache: Path, backend=None, draft: bool = False):
    backend = backend or FakeBackend(SCORES)
    opts = BuildOptions(
        story=story,
        out_dir=out,
        cache_dir=cache,
        backend="offline",
        backend_factory=lambda name: backend,
        rates={"image": 1000.0, "video": 1000.0},
        draft=draft,
    )
    return run_build(opts), backend


def _keys(story: Path, cache: Path) -> dict[str, tuple[str | None, bool]]:
    prep = prepare(story, backend="offline", cache_dir=cache)
    res = resolve(prep.graph, prep.cache)
    return {sid: (res.keys[sid], res.cached(sid)) for sid in prep.graph.steps}


def _files(root: Path) -> dict[Path, int]:
    return {p: p.lstat().st_size for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def _entries(cache: Path, table: str) -> set[str]:
    return {p.stem for p in (cache / table).glob("*/*.json")}


@pytest.fixture(scope="module")
def shared(tmp_path_factory, prefect_harness):
    """Stories A and B built into one cache, with the per-call ground truth."""
    mp = pytest.MonkeyPatch()
    mp.setenv("STORYC_RENDER_SCALE", SCALE)
    mp.delenv("XAI_API_KEY", raising=False)
    truth = _CallTruth()
    root = tmp_path_factory.mktemp("shared")
    a, b = _story(root / "a", STORY_A), _story(root / "b", STORY_B)
    with watch(truth):
        for story, name in ((a, "a"), (b, "b")):
            result, _ = _build(story, root / "out" / name, root / "cache")
            assert result.status == "built", result.message
    yield {
        "root": root,
        "a": a,
        "b": b,
        "truth": truth,
        "keys_a": _keys(a, root / "cache"),
        "keys_b": _keys(b, root / "cache"),
    }
    mp.undo()


@pytest.fixture
def work(shared, tmp_path, monkeypatch):
    """A private copy of the shared stories and cache (tests mutate them)."""
    monkeypatch.setenv("STORYC_RENDER_SCALE", SCALE)
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    shutil.copytree(shared["root"] / "cache", tmp_path / "cache")
    a = _story(tmp_path / "a", STORY_A)
    b = _story(tmp_path / "b", STORY_B)
    return {"a": a, "b": b, "cache": tmp_path / "cache", "tmp": tmp_path}


def test_the_stories_share_their_character_sheets(shared):
    ka, kb = shared["keys_a"], shared["keys_b"]
    assert all(cached for _, cached in [*ka.values(), *kb.values()])
    assert ka["character:Bo"] == kb["character:Bo"]  # one entry serves both stories


def test_a_prune_with_nothing_unreachable_removes_nothing(work):
    before = _files(work["cache"])
    plan = plan_prune([work["a"], work["b"]], cache_dir=work["cache"])
    assert plan.removals == [] and plan.open_steps == 0
    assert apply_prune(plan) == 0 and _files(work["cache"]) == before


def test_after_an_edit_prune_removes_exactly_the_unreachable_entries(work, shared, call_truth):
    cache, a, b = work["cache"], work["a"], work["b"]
    truth = call_truth
    truth.step_of.update(shared["truth"].step_of)
    a.write_text(STORY_A.replace(*EDIT))
    after_edit = _keys(a, cache)
    reachable = {k for k, cached in [*after_edit.values(), *shared["keys_b"].values()] if cached}
    old = {k for k, _ in shared["keys_a"].values()} | {k for k, _ in shared["keys_b"].values()}
    dead_steps = old - reachable
    assert {sid for sid, (k, _) in shared["keys_a"].items() if k in dead_steps} == CHANGED

    calls_before = _entries(cache, "calls")
    dead_calls = {c for c in calls_before if truth.step_of[c] in dead_steps}
    live_calls = calls_before - dead_calls
    assert dead_calls and live_calls
    size_before = sum(_files(cache).values())
    steps_before = _entries(cache, "steps")

    result = CliRunner().invoke(app, ["cache", "prune", str(a), str(b), "--cache", str(cache)])
    assert result.exit_code == 0, result.stderr
    size_after = sum(_files(cache).values())

    # steps: exactly the old entries of the re-keyed steps
    assert steps_before - _entries(cache, "steps") == dead_steps
    # calls: none a build of A or B can use is removed. An entry names its step's key, so
    # exactly the dead ones go.
    removed_calls = calls_before - _entries(cache, "calls")
    assert removed_calls == dead_calls and len(removed_calls) >= 5
    # objects: every kept entry's blobs are there, and nothing else is
    named = set()
    for table in ("steps", "calls"):
        for path in (cache / table).glob("*/*.json"):
            named |= set(json.loads(path.read_bytes()).get("files", {}).values())
    blobs = {p.name for p in (cache / "objects").glob("*/*")}
    assert named == blobs
    # the report: what it freed is what the disk lost
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("freed ") and f"{len(dead_steps)} step entries" in line
    plan_freed = size_before - size_after
    assert plan_freed > 0
    assert f"freed {_human(plan_freed)} ({plan_freed} bytes) in " in line

    # the unchanged story is up to date without a call; the edited one rebuilds only what changed
    def no_calls(name):
        raise AssertionError("story B must not call the backend")

    rb = run_build(
        BuildOptions(
            story=b, out_dir=work["tmp"] / "out_b", cache_dir=cache, backend="offline", backend_factory=no_calls
        )
    )
    assert rb.status == "up_to_date" and rb.report["api_calls_total"] == 0
    ra, backend = _build(a, work["tmp"] / "out_a", cache)
    assert ra.status == "built", ra.message
    assert {s["id"] for s in ra.report["steps"] if not s["cached"]} == CHANGED
    assert {what for _, what in backend.log} == {"keyframe:2", "video:2"}

    # with every step built, a second prune leaves only what the stories use
    plan = plan_prune([a, b], cache_dir=cache)
    freed = apply_prune(plan)
    assert plan.open_steps == 0
    reachable = {k for k, cached in [*_keys(a, cache).values(), *_keys(b, cache).values()] if cached}
    assert {c for c in _entries(cache, "calls") if truth.step_of[c] not in reachable} == set()
    assert _entries(cache, "steps") == reachable
    assert freed == plan.freed_bytes


def _human(n: int) -> str:
    from storyc.cli.output import human_size

    return human_size(n)


def test_freed_bytes_equal_the_decrease_on_disk(work):
    cache, a, b = work["cache"], work["a"], work["b"]
    a.write_text(STORY_A.replace(*EDIT))
    before = sum(_files(cache).values())
    plan = plan_prune([a, b], cache_dir=cache)
    dry = plan.freed_bytes
    assert sum(_files(cache).values()) == before  # planning removes nothing
    freed = apply_prune(plan)
    assert freed == dry == before - sum(_files(cache).values()) > 0


def test_calls_of_a_crashed_step_survive_prune_and_are_replayed(work, shared, call_truth):
    cache, a, b = work["cache"], work["a"], work["b"]
    truth = call_truth
    a.write_text(STORY_A.replace(*EDIT))
    crashing = FakeBackend(SCORES, fail_after=1)  # keyframe 2's compose is paid, its check crashes
    crashed, _ = _build(a, work["tmp"] / "out_a", cache, backend=crashing)
    assert crashed.status == "failed"
    in_progress = set(truth.step_of)
    assert in_progress and {truth.step_of[c] for c in in_progress} == {_keys(a, cache)["keyframe:2"][0]}

    plan = plan_prune([a, b], cache_dir=cache)
    apply_prune(plan)
    assert plan.removed("steps") == len(CHANGED)  # the old keys went
    assert in_progress <= _entries(cache, "calls")  # the crashed step's paid call did not

    resumed, backend = _build(a, work["tmp"] / "out_a", cache)
    assert resumed.status == "built", resumed.message
    assert resumed.report["calls_replayed"] == len(in_progress)
    # nothing paid twice: as many calls in all as one uninterrupted build of the edit makes
    shutil.copytree(shared["root"] / "cache", work["tmp"] / "fresh_cache")
    fresh, uninterrupted = _build(a, work["tmp"] / "fresh_out", work["tmp"] / "fresh_cache")
    assert fresh.status == "built"
    assert sum(crashing.calls.values()) + sum(backend.calls.values()) == sum(uninterrupted.calls.values())


def test_stale_temps_of_dead_processes_go_and_live_ones_stay(work):
    cache = work["cache"]
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    shard = next((cache / "objects").iterdir())
    stale = shard / f".blob.{dead}.0a1b2c3d.tmp"
    live = shard / f".blob.{os.getpid()}.0a1b2c3d.tmp"
    stale.write_bytes(b"x" * 1000)
    live.write_bytes(b"y" * 10)
    plan = plan_prune([work["a"], work["b"]], cache_dir=cache)
    assert [(r.table, r.path) for r in plan.removals] == [("temps", stale)]
    assert apply_prune(plan) == 1000
    assert not stale.exists() and live.exists()


def test_dry_run_lists_and_removes_nothing(work):
    cache, a = work["cache"], work["a"]
    before = _files(cache)
    result = CliRunner().invoke(app, ["cache", "prune", str(a), "--cache", str(cache), "--dry-run"])  # B not named
    assert result.exit_code == 0, result.stderr
    assert _files(cache) == before
    listed = [line for line in result.stdout.splitlines() if line.startswith("would remove ")]
    assert listed and all(str(cache) in line for line in listed)
    assert result.stdout.strip().splitlines()[-1].startswith("would free ")


def test_a_bad_story_is_positioned_diagnostics_and_nothing_is_removed(work):
    cache = work["cache"]
    bad = work["tmp"] / "bad.yaml"
    bad.write_text(STORY_A.replace("duration_seconds: 3}\n  - {scene_id: 2", "duration_seconds: 90}\n  - {scene_id: 2"))
    before = _files(cache)
    result = CliRunner().invoke(app, ["cache", "prune", str(work["a"]), str(bad), "--cache", str(cache)])
    assert result.exit_code == 1
    assert f"{bad}:" in result.stderr and "E204" in result.stderr and result.stdout == ""
    assert _files(cache) == before
    missing = CliRunner().invoke(app, ["cache", "prune", str(work["tmp"] / "nope.yaml"), "--cache", str(cache)])
    assert missing.exit_code == 2 and "no such file" in missing.stderr and _files(cache) == before


def test_prune_refuses_while_the_cache_is_in_use_and_a_dry_run_still_reports(work):
    # what a build of any story holds, here or on another machine sharing the folder
    from storyc.store.cache import cache_in_use

    before = _files(work["cache"])
    with cache_in_use(work["cache"]):
        refused = CliRunner().invoke(app, ["cache", "prune", str(work["a"]), "--cache", str(work["cache"])])
        dry = CliRunner().invoke(app, ["cache", "prune", str(work["a"]), "--cache", str(work["cache"]), "--dry-run"])
    assert refused.exit_code == 1 and refused.stdout == ""
    assert "a storyc build is using the cache" in refused.stderr and "prune after it finishes" in refused.stderr
    assert dry.exit_code == 0 and dry.stdout.strip().splitlines()[-1].startswith("would free ")
    assert _files(work["cache"]) == before


def test_the_default_cache_is_beside_the_first_story(work):
    shutil.move(str(work["cache"]), work["a"].parent / ".storyc" / "cache")
    result = CliRunner().invoke(app, ["cache", "prune", str(work["a"]), str(work["b"])])
    assert result.exit_code == 0, result.stderr
    assert str(work["a"].parent / ".storyc" / "cache") in result.stdout and "freed 0 B (0 bytes)" in result.stdout


def test_a_draft_and_a_full_build_both_survive_a_prune(work):
    result, backend = _build(work["a"], work["tmp"] / "draft", work["cache"], draft=True)
    assert result.status == "built" and not backend.log  # only its final video is its own
    steps = _entries(work["cache"], "steps")
    plan = plan_prune([work["a"], work["b"]], cache_dir=work["cache"])
    assert plan.removed("steps") == 0 and plan.open_steps == 0, plan.removals
    assert apply_prune(plan) == 0 and _entries(work["cache"], "steps") == steps


def test_a_story_with_nothing_in_the_cache_is_warned_about(work, monkeypatch):
    monkeypatch.setenv("STORYC_RENDER_SCALE", "0.5")  # another render scale: other keys
    result = CliRunner().invoke(
        app, ["cache", "prune", str(work["a"]), str(work["b"]), "--cache", str(work["cache"]), "--dry-run"]
    )
    assert result.exit_code == 0
    assert f"warning: {work['a'].resolve()} has no finished step" in result.stderr
    assert "would free" in result.stdout


def test_malformed_entries_are_garbage_not_a_traceback(work):
    cache = work["cache"]
    shard = cache / "calls" / "aa"
    shard.mkdir(parents=True, exist_ok=True)
    odd = {
        "aa" + "1" * 62: {"files": ["x"], "prompt": ["y"]},
        "aa" + "2" * 62: "not a mapping",
        "aa" + "3" * 62: {"files": {}, "prompt": ["unhashable"], "kind": "image"},
    }
    for key, body in odd.items():
        if isinstance(body, dict):
            body["key"] = key
        (shard / f"{key}.json").write_text(json.dumps(body))
    (cache / "steps" / "aa").mkdir(parents=True, exist_ok=True)
    (cache / "steps" / "aa" / f"{'aa' + '4' * 62}.json").write_bytes(b"{truncated")
    result = CliRunner().invoke(app, ["cache", "prune", str(work["a"]), str(work["b"]), "--cache", str(cache)])
    assert result.exit_code == 0, result.stderr
    assert "1 step entries, 3 call entries" in result.stdout
    assert not list(shard.glob("*.json")) or all(p.stem not in odd for p in shard.glob("*.json"))


def test_an_entry_that_names_its_step_key_is_decided_exactly(work):
    cache = Cache(work["cache"])
    blob = cache.put_bytes(b"orphan call output")
    dead = "ab" * 32
    cache.put_call("cd" * 32, {"files": {"keyframes/x.jpg": blob}, "prompt": "p", "kind": "image", "step_key": dead})
    live_key = _keys(work["a"], work["cache"])["keyframe:1"][0]
    cache.put_call("ef" * 32, {"files": {}, "prompt": "q", "kind": "vision", "step_key": live_key})
    # no step key: no build of this version wrote it, none can replay it
    cache.put_call("ab" * 32, {"files": {}, "prompt": "q", "kind": "vision"})
    plan = plan_prune([work["a"], work["b"]], cache_dir=work["cache"])
    removed = {r.path.name for r in plan.removals}
    assert removed == {"cd" * 32 + ".json", "ab" * 32 + ".json", blob}


# ─── storyc clean ────────────────────────────────────────────────────────────


@pytest.fixture
def output(shared, tmp_path, monkeypatch):
    """A copy of story A's real build output, as build/story/ under a fresh working folder."""
    monkeypatch.chdir(tmp_path)
    story = _story(tmp_path, STORY_A)
    out = tmp_path / "build" / "story"
    shutil.copytree(shared["root"] / "out" / "a", out, symlinks=True)
    return {"story": story, "out": out, "tmp": tmp_path}


def _clean(*args):
    return CliRunner().invoke(app, ["clean", *map(str, args)])


def test_clean_removes_the_output_folder_and_reports_files_and_bytes(output):
    files = _files(output["out"])
    result = _clean("story.yaml")
    assert result.exit_code == 0, result.stderr
    assert not output["out"].exists() and output["story"].exists()
    total = sum(files.values())
    assert (
        result.stdout.strip()
        == f"removed build/story: {len(files)} file(s), {_human(total)} ({total} bytes) (the cache is kept)"
    )
    again = _clean("story.yaml")
    assert again.exit_code == 0 and again.stdout.strip() == "build/story: nothing to clean"


def test_clean_dry_run_lists_every_file_and_removes_nothing(output):
    files = _files(output["out"])
    result = _clean("story.yaml", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert _files(output["out"]) == files
    listed = [line.split("  (")[0].removeprefix("would remove ") for line in result.stdout.splitlines()[:-1]]
    assert sorted(listed) == sorted(str(p.relative_to(output["tmp"])) for p in files)
    assert result.stdout.splitlines()[-1].startswith(f"would remove build/story: {len(files)} file(s)")


def test_clean_does_not_touch_the_cache(output, shared):
    cache = output["tmp"] / ".storyc" / "cache"
    shutil.copytree(shared["root"] / "cache", cache)
    before = _files(cache)
    assert _clean("story.yaml").exit_code == 0
    assert _files(cache) == before


def test_clean_refuses_while_a_build_holds_the_lock(output):
    files = _files(output["out"])
    with BuildLock(output["out"]):
        result = _clean("story.yaml")
    assert result.exit_code == 1 and result.stdout == ""
    assert f"a storyc build (pid {os.getpid()}) is writing build/story" in result.stderr
    assert _files(output["out"]) == files


def test_clean_refuses_a_folder_that_is_not_storyc_output(output):
    other = output["tmp"] / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"\xff\xd8 not ours")
    (other / "state.json").write_text('{"mine": true}')  # a state.json storyc did not write
    result = _clean("story.yaml", "--out", other)
    assert result.exit_code == 1 and "does not look like storyc build output" in result.stderr
    assert (other / "holiday.jpg").exists()


def test_clean_never_follows_symbolic_links_out(output):
    outside = output["tmp"] / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    (output["out"] / "link_dir").symlink_to(outside, target_is_directory=True)
    (output["out"] / "link_file").symlink_to(outside / "keep.txt")
    assert _clean("story.yaml").exit_code == 0
    assert not output["out"].exists() and (outside / "keep.txt").read_text() == "mine"
    # an output folder that is itself a link is refused
    real = output["tmp"] / "real_out"
    shutil.copytree(output["tmp"] / "precious", real)
    (real / "state.json").write_text(json.dumps({"storyc_version": "x", "steps": {}}))
    (output["tmp"] / "build" / "story").symlink_to(real, target_is_directory=True)
    refused = _clean("story.yaml")
    assert refused.exit_code == 1 and "symbolic link" in refused.stderr and (real / "keep.txt").exists()


def test_clean_refuses_a_lock_file_that_is_a_link(output):
    target = output["tmp"] / "precious.txt"
    target.write_text("mine")
    lock = output["out"] / ".storyc.lock"
    lock.unlink(missing_ok=True)
    lock.symlink_to(target)
    result = _clean("story.yaml")
    assert result.exit_code == 1 and "symbolic link" in result.stderr
    assert target.read_text() == "mine" and output["out"].is_dir()


def test_clean_refuses_a_folder_holding_the_story_or_the_working_folder(output):
    (output["tmp"] / "state.json").write_text(json.dumps({"storyc_version": "x", "steps": {}}))  # built with --out .
    result = _clean("story.yaml", "--out", ".")
    assert result.exit_code == 1 and "current folder" in result.stderr and output["story"].exists()


def test_clean_usage_errors(output):
    assert _clean("nope.yaml").exit_code == 2
    gone = _clean("nope.yaml", "--out", output["out"])  # a deleted story's output, by --out
    assert gone.exit_code == 0 and not output["out"].exists()


def test_prune_is_refused_while_a_build_uses_the_cache(work):
    # A build of any story holds the cache shared from resolution to the end, so a prune
    # (even one that does not name that story) cannot remove what it is restoring.
    cache, a, b = work["cache"], work["a"], work["b"]
    a.write_text(STORY_A.replace(*EDIT))
    attempts = []

    class PruneDuringTheBuild(FakeBackend):
        def _tick(self, kind, what):
            if not attempts:
                before = _files(cache)
                attempts.append(CliRunner().invoke(app, ["cache", "prune", str(b), "--cache", str(cache)]))
                assert _files(cache) == before
            return super()._tick(kind, what)

    result, _ = _build(a, work["tmp"] / "out_a", cache, backend=PruneDuringTheBuild(SCORES))
    assert result.status == "built", result.message
    assert attempts and attempts[0].exit_code == 1
    assert "a storyc build is using the cache" in attempts[0].stderr
    # once the build is over, the same prune runs (and removes story A's entries, not named)
    after = CliRunner().invoke(app, ["cache", "prune", str(b), "--cache", str(cache)])
    assert after.exit_code == 0, after.stderr
    assert _keys(b, cache) and all(cached for _, cached in _keys(b, cache).values())
