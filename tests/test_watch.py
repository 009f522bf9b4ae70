"""storyc build --watch and storyc serve: what is watched, the served storyboard (its
reload script and policy, loopback only), and a real watch loop: start it, save edits (a
good one, a bad one, the fix), see each rebuild or diagnostic, stop it with Ctrl-C."""

from __future__ import annotations

import http.client
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from storyc.build.options import BuildOptions
from storyc.build.pipeline import run_build
from storyc.build.watch import sources_of
from storyc.report.html import CSP
from storyc.report.serve import VERSION_PATH, served_page, start_server, storyboard_version

STORY = """\
title: Watch test
style: flat vector illustration with bold outlines
color_palette: teal, coral, cream
characters:
  - {name: Ava, role: protagonist, visual_description: a tall woman with short red hair and a yellow raincoat, personality_cues: [bold]}
scenes:
  - {scene_id: 1, title: Ava at the pier, description: Ava walks along the pier., characters_present: [Ava],
     setting: wooden pier at dawn, camera: "wide shot, slow pan", mood: calm, action: Ava walks toward the sea, duration_seconds: 3}
  - {scene_id: 2, title: Ava waves, description: Ava waves at a boat., characters_present: [Ava],
     setting: wooden pier at dawn, camera: medium shot, mood: warm, action: Ava waves at a boat, duration_seconds: 3,
     transition: crossfade}
"""


@pytest.mark.unit
def test_the_watch_wakes_for_the_story_and_its_templates_only(tmp_path):
    story = tmp_path / "story.yaml"
    story.write_text(STORY)
    (tmp_path / "prompts").mkdir()
    extra = tmp_path / "mine"
    extra.mkdir()
    sources = sources_of(story, extra)
    assert sources.folders() == [tmp_path, tmp_path / "prompts", extra]
    assert sources.matches(story) and sources.matches(tmp_path / "prompts" / "keyframe.j2")
    assert sources.matches(extra / "video.j2")
    # what a build writes beside the story, editors' swap files, other files: ignored
    for other in (".storyc/cache/steps/ab/x.json", "build/story/storyboard.html", ".story.yaml.swp", "notes.txt"):
        assert not sources.matches(tmp_path / other), other
    assert not sources.matches(tmp_path / "prompts" / "README.md")
    assert sources.shown(tmp_path / "prompts" / "keyframe.j2") == "prompts/keyframe.j2"


@pytest.mark.unit
def test_the_served_page_allows_exactly_its_reload_script():
    page = (
        f'<html><head><meta http-equiv="Content-Security-Policy" content="{CSP.replace(chr(39), "&#39;")}">'
        "</head><body><p>board</p></body></html>"
    )
    served = served_page(page, "n0nce", "v1")
    policy = re.search(r'Content-Security-Policy" content="([^"]*)"', served).group(1).replace("&#x27;", "'")
    assert policy == f"{CSP}; script-src 'nonce-n0nce'; connect-src 'self'"
    assert served.count("<script") == 1 and '<script nonce="n0nce">' in served
    assert f'"{VERSION_PATH}"' in served and 'var seen = "v1"' in served
    assert served.index("<script") > served.index("<p>board</p>")  # at the end of the body


@pytest.mark.integration
def test_storyc_serve_answers_on_loopback_only_and_versions_the_storyboard(tmp_path):
    (tmp_path / "storyboard.html").write_text(
        f'<html><head><meta http-equiv="Content-Security-Policy" content="{CSP}"></head><body>b</body></html>'
    )
    (tmp_path / "notes.txt").write_text("hello")
    server = start_server(tmp_path)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"

        def get(path: str, host_header: str | None = None) -> tuple[int, str]:
            conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("GET", path, headers={"Host": host_header or f"127.0.0.1:{port}"})
            response = conn.getresponse()
            body = response.read().decode()
            conn.close()
            return response.status, body

        status, page = get("/storyboard.html")
        assert status == 200 and "<script nonce=" in page
        assert get("/notes.txt") == (200, "hello")
        assert get("/../../etc/passwd")[0] == 404
        assert get("/storyboard.html", host_header=f"attacker.example:{port}")[0] == 403  # DNS rebinding
        before = get(VERSION_PATH)[1]
        assert before == storyboard_version(tmp_path)
        time.sleep(0.01)  # a new mtime even on coarse clocks (the file is also a new inode)
        (tmp_path / "storyboard.tmp").write_text("<html><body>rebuilt</body></html>")
        os.replace(tmp_path / "storyboard.tmp", tmp_path / "storyboard.html")
        assert get(VERSION_PATH)[1] != before
    finally:
        server.close()


class _Lines:
    """A process's output lines, read as they come (stdout and stderr together)."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        for stream in (proc.stdout, proc.stderr):
            threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, deadline_s: float = 120) -> str:
        """The first line from now on matching `pattern` (a generous deadline only keeps a
        broken watch from hanging the suite; nothing here is timed)."""
        end = time.monotonic() + deadline_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; got:\n" + "\n".join(self.seen)) from None
            self.seen.append(line)
            if re.search(pattern, line):
                return line


@pytest.mark.integration
@pytest.mark.slow
def test_a_real_watch_loop_rebuilds_on_save_survives_a_bad_edit_and_stops_on_ctrl_c(
    tmp_path, prefect_harness, monkeypatch
):
    monkeypatch.setenv("STORYC_RENDER_SCALE", "0.1")
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    story = tmp_path / "story.yaml"
    story.write_text(STORY)
    out, cache = tmp_path / "out", tmp_path / "cache"
    # built once here, so the watch's builds only re-assemble (no Prefect in the subprocess)
    first = run_build(BuildOptions(story=story, out_dir=out, cache_dir=cache, backend="offline"))
    assert first.status == "built", first.message
    env = {**os.environ, "STORYC_RENDER_SCALE": "0.1", "NO_COLOR": "1"}
    env.pop("XAI_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "storyc", "build", str(story), "--out", str(out), "--cache", str(cache), "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    lines = _Lines(proc)
    try:
        url = lines.wait_for(r"^storyboard: http://127\.0\.0\.1:\d+/storyboard\.html")
        port = int(re.search(r":(\d+)/", url).group(1))
        lines.wait_for(r"^up to date \(7 cached step\(s\)\)")
        lines.wait_for(r"watching story\.yaml")
        version = _get(port, VERSION_PATH)

        # a good edit: one transition, so the final video is assembled again
        story.write_text(STORY.replace("transition: crossfade", "transition: cut"))
        lines.wait_for(r"changed: story\.yaml")
        rebuilt = lines.wait_for(r"^rebuilt: ")
        assert "2 step(s) ran: assemble, script" in rebuilt and "0 API call(s)" in rebuilt and "$0.00" in rebuilt
        lines.wait_for(r"watching story\.yaml")
        assert _get(port, VERSION_PATH) != version  # the open page reloads

        # a bad edit: its diagnostic, and the watch goes on
        story.write_text(STORY.replace("a boat., characters_present: [Ava]", "a boat., characters_present: [Zed]"))
        lines.wait_for(r"changed: story\.yaml")
        diagnostic = lines.wait_for(r"error E\d+")
        assert "story.yaml:" in diagnostic and "Zed" in diagnostic
        lines.wait_for(r"fix it and save")
        assert proc.poll() is None

        # the fix: back to the built story, nothing to render
        story.write_text(STORY.replace("transition: crossfade", "transition: cut"))
        lines.wait_for(r"changed: story\.yaml")
        assert "no step uses what changed" in lines.wait_for(r"^up to date")
        lines.wait_for(r"watching story\.yaml")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        lines.wait_for(r"stopped watching")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    body = conn.getresponse().read().decode()
    conn.close()
    return body
