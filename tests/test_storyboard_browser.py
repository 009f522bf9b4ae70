"""storyboard.html from a real offline build, opened in headless Chromium.

The page must work offline from its folder: a screenshot that is not blank, every <img>
decoded, every <video> loaded (metadata, and Debian's Chromium decodes our H.264 frames),
no request other than file:// (and the data: icons of Chromium's own media controls),
and the story's text inert (a `<script>` in the title stays text).

Chromium: Debian's `chromium` package (`.ci/run` installs it). Without it the browser
tests skip on a developer's machine and FAIL when STORYC_REQUIRE_BROWSER is set (CI).
"""

from __future__ import annotations

import html
import io
import os
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _browser
from _html import parse_page
from storyc.model.state import BuildState

TITLE = '<script>window.__storyc_pwned = 1</script> Harbour & "pier"'
STORY = """\
title: '<script>window.__storyc_pwned = 1</script> Harbour & "pier"'
style: flat vector illustration with bold outlines and soft pastel shading
color_palette: "teal, coral, cream, deep forest greens, slate #336699"
quality: {consistency_threshold: 0.95, max_character_attempts: 2, max_keyframe_iterations: 3, max_video_corrections: 1}
characters:
  - {name: Ava, role: protagonist, visual_description: a tall woman with short red hair and a yellow raincoat,
     personality_cues: [bold]}
  - {name: Bo, role: supporting, visual_description: a small boy with curly black hair and a blue striped shirt,
     personality_cues: [shy]}
scenes:
  - {scene_id: 1, title: Ava at the pier, description: 'Ava walks along the pier <img src=x onerror=alert(1)>.',
     characters_present: [Ava], setting: wooden pier at dawn, camera: "wide shot, slow pan", mood: calm,
     action: Ava walks toward the sea, duration_seconds: 3, narration: 'The sea <b>called</b> her.'}
  - {scene_id: 2, title: Bo joins Ava, description: Bo runs up to Ava., characters_present: [Ava, Bo],
     setting: wooden pier at dawn, camera: medium shot, mood: warm, action: Bo runs to Ava and waves,
     duration_seconds: 3, transition: crossfade}
"""
PAGE_BACKGROUND = (0xF6, 0xF5, 0xF2)  # --bg of the light scheme (report/templates/storyboard.css)
REQUIRE_ENV = "STORYC_REQUIRE_BROWSER"


def require_chromium() -> str:
    """Chromium's path; else skip (a developer's machine) or, with STORYC_REQUIRE_BROWSER
    set (.ci/run sets it), fail: CI must not pass by skipping."""
    binary = _browser.find_chromium()
    if binary is None:
        reason = "chromium is not installed (Debian: apt-get install chromium; or set STORYC_CHROMIUM)"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{reason}, and {REQUIRE_ENV} is set: CI must not skip the browser test")
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_chromium()


@pytest.mark.unit
def test_missing_chromium_skips_here_and_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setenv("STORYC_CHROMIUM", str(tmp_path / "no-such-chromium"))
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        require_chromium()
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="CI must not skip"):
        require_chromium()


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness) -> Path:
    """One offline build (tiny renders) whose strict threshold makes every loop work: sheet
    retries, keyframe fix edits, a video correction and scores below the threshold."""
    from storyc.backends.offline import faults as offline_faults
    from storyc.build.options import BuildOptions
    from storyc.build.pipeline import run_build

    root = tmp_path_factory.mktemp("storyboard")
    story = root / "story.yaml"
    story.write_text(STORY)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STORYC_RENDER_SCALE", "0.1")
        mp.delenv("XAI_API_KEY", raising=False)
        mp.delenv(offline_faults.FAULTS_ENV, raising=False)
        mp.delenv(offline_faults.LATENCY_ENV, raising=False)
        result = run_build(
            BuildOptions(
                story=story,
                out_dir=root / "out",
                cache_dir=root / "cache",
                backend="offline",
                rates={"image": 1000.0, "video": 1000.0},
            )
        )
    assert result.status == "built", result.message
    return root / "out"


@pytest.mark.integration
@pytest.mark.slow
def test_built_page_shows_every_attempt_and_links_only_relative_files(built):
    state = BuildState.model_validate_json((built / "state.json").read_text())
    page = (built / "storyboard.html").read_text()
    parsed = parse_page(page)
    tags = [t for t, _ in parsed.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    csp = [a["content"] for t, a in parsed.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert len(csp) == 1 and csp[0].startswith("default-src 'none';") and "http" not in csp[0]
    refs = [a[k] for t, a in parsed.tags for k in ("src", "href", "poster") if a.get(k) and t in ("img", "video", "a")]
    assert refs
    for ref in refs:  # relative, inside the folder, and on disk
        assert not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^/|^\\", ref), ref
        assert (built / html.unescape(ref).replace("%20", " ")).is_file(), ref
    assert "http://" not in page and "https://" not in page and "file://" not in page
    # every judged attempt of every loop is a thumbnail with its score
    imgs = {a["src"] for t, a in parsed.tags if t == "img"}
    recorded = [p for r in state.steps.values() if r.kind in ("character", "keyframe") for p in r.attempt_scores]
    assert len(recorded) >= 4 and set(recorded) <= imgs
    attempts = [a for t, a in parsed.tags if t == "figure" and "attempt" in a.get("class", "")]
    judged = sum(len(r.attempt_scores) for r in state.steps.values())
    assert len(attempts) == judged
    text = "".join(parsed.text)
    # this story (today's offline renderer) fix-edits keyframes and corrects scene 1's clip
    for kind, label in (("keyframe", "fix edit"), ("video", "video-edit correction")):
        if any(r.edit_passes for r in state.steps.values() if r.kind == kind):
            assert label in text, label
    assert "Edits" in text and "Corrections" in text
    # palette as text and as swatches (hex codes and colour words)
    assert "slate #336699" in text and 'style="background:#336699"' in page and 'style="background:#008080"' in page
    # scores under the threshold: class, colour (CSS) and a text marker
    assert 'class="score below"' in page and "▼ below 0.95" in text
    # the story's text is escaped, never markup
    assert TITLE in text and "<img src=x onerror=alert(1)>" in text
    assert sum(1 for t, a in parsed.tags if t == "img" and a.get("src") == "x") == 0
    # players for every clip and the final video; cost and call totals
    videos = [a["src"] for t, a in parsed.tags if t == "video"]
    assert videos[0] == "final_video.mp4" and len(videos) == 1 + len(state.plan.scenes)
    assert all("controls" in a for t, a in parsed.tags if t == "video")
    total = sum(r.api_calls for r in state.steps.values())
    assert f"API calls: {total}" in text.replace("\n", " ") and "$0.00" in text


def _screenshot_figures(png: bytes, title_box: dict) -> dict:
    from PIL import Image, ImageStat

    image = Image.open(io.BytesIO(png)).convert("RGB")
    grey = image.convert("L")
    colours = image.getcolors(maxcolors=1 << 24) or []
    scale = image.width / title_box["viewport_width"]  # device pixels per CSS pixel
    box = tuple(
        round(v * scale) for v in (title_box["left"], title_box["top"], title_box["right"], title_box["bottom"])
    )
    title = image.crop(box)
    data = title.tobytes()  # RGB triplets
    r0, g0, b0 = PAGE_BACKGROUND
    ink = sum(
        1 for i in range(0, len(data), 3) if max(abs(data[i] - r0), abs(data[i + 1] - g0), abs(data[i + 2] - b0)) > 60
    )
    return {
        "size": image.size,
        "distinct_colours": len(colours),
        "grey_stddev": round(ImageStat.Stat(grey).stddev[0], 1),
        "background_share": round(max(n for n, _ in colours) / (image.width * image.height), 3),
        "title_box": box,
        "title_ink_share": round(ink / max(1, title.width * title.height), 3),
    }


@pytest.mark.integration
@pytest.mark.browser
@pytest.mark.slow
def test_storyboard_opens_in_headless_chromium(built, chromium, tmp_path):
    t0 = time.perf_counter()
    url = (built / "storyboard.html").resolve().as_uri()
    with _browser.Chromium(chromium, tmp_path / "profile") as browser:
        pgid = browser.proc.pid
        browser.send("Page.enable")
        browser.send("Network.enable")
        browser.send("Runtime.enable")
        browser.send("Log.enable")
        browser.send("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]})
        report, problems = _browser.check_media(browser, url)
        decode = browser.evaluate(_browser.DECODE_JS)
        audio = browser.evaluate(_browser.AUDIO_JS, timeout=30)
        inert = browser.evaluate(
            "({scripts: document.scripts.length, pwned: typeof window.__storyc_pwned,"
            " title: document.querySelector('h1').textContent, images: document.images.length})"
        )
        browser.evaluate("window.scrollTo(0, 0)")
        title_box = browser.evaluate(
            "(() => { const r = document.querySelector('h1').getBoundingClientRect();"
            " return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, viewport_width: innerWidth}; })()"
        )
        png = browser.screenshot()
        (tmp_path / "storyboard.png").write_bytes(png)
        requests = browser.requests()
        errors = [
            e
            for e in browser.events
            if e["method"] == "Runtime.exceptionThrown"
            or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
            or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
        ]
        start_s = browser.start_s
    deadline = time.monotonic() + 60  # a hang guard, not a timing check: SIGKILLed processes only need reaping
    while True:  # Chromium's whole process group is gone
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        if time.monotonic() > deadline:
            pytest.fail("chromium's process group is still alive after close()")
        time.sleep(0.05)

    assert problems == [], problems
    assert len(report["images"]) >= 10 and len(report["videos"]) == 3
    assert all(v["duration"] > 0 and v["width"] > 0 for v in report["videos"]), report["videos"]
    # Debian's Chromium decodes our H.264 MP4s (not only their metadata)
    assert decode["h264"] == "probably", decode
    assert all(v["decodedFrames"] > 0 and v["error"] is None for v in decode["videos"]), decode
    # the scene's speech plays from its folder too (the CSP's media-src), as long as its scene
    assert audio == [{"src": "speech/scene_1.wav", "duration": 3, "error": None}], audio
    assert '· <a href="final_video.vtt">subtitles</a>' in (built / "storyboard.html").read_text()
    # offline: the page and its media from file://; data: only for Chromium's own media-control icons
    schemes = {u.split(":", 1)[0] for u in requests}
    assert schemes <= {"file", "data"}, requests
    assert "data:" not in (built / "storyboard.html").read_text()
    assert "The sea &lt;b&gt;called&lt;/b&gt; her." in (built / "storyboard.html").read_text()  # a line is text
    assert sum(u.startswith("file:") for u in requests) >= 1 + len({i["src"] for i in report["images"]})
    assert errors == [], errors  # no CSP violation, no script error, no failed load
    # the title is text: no script element, nothing ran
    assert inert["scripts"] == 0 and inert["pwned"] == "undefined" and inert["title"] == TITLE, inert
    figures = _screenshot_figures(png, title_box)
    assert figures["distinct_colours"] > 500, figures  # pictures, text and players, not a flat page
    assert figures["grey_stddev"] > 25, figures
    assert figures["background_share"] < 0.9, figures
    assert figures["title_ink_share"] > 0.03, figures  # the title region holds text
    print(
        f"\nstoryboard browser figures: chromium start {start_s:.2f} s, test {time.perf_counter() - t0:.2f} s, "
        f"{len(report['images'])} images, {len(report['videos'])} videos, {len(requests)} requests, "
        f"screenshot {figures}, decode {[v['decodedFrames'] for v in decode['videos']]}"
    )


@pytest.mark.integration
@pytest.mark.browser
@pytest.mark.slow
def test_the_checker_reports_a_broken_image_and_video(built, chromium, tmp_path):
    """The check is shown to work: a copy of the page with one image path and one video
    path broken (beside the original, so every other relative path still resolves)."""
    page = (built / "storyboard.html").read_text()
    broken = re.sub(r'<img src="([^"]+)"', r'<img src="missing/\1"', page, count=1)
    broken = re.sub(
        r'<video controls preload="metadata"( poster="[^"]*")? src="([^"]+)"',
        r'<video controls preload="metadata"\1 src="missing/\2"',
        broken,
        count=1,
    )
    assert broken.count('src="missing/') == 2
    copy = built / "storyboard_broken_copy.html"
    copy.write_text(broken)
    try:
        with _browser.Chromium(chromium, tmp_path / "profile") as browser:
            browser.send("Page.enable")
            report, problems = _browser.check_media(browser, copy.resolve().as_uri(), timeout_s=10)
    finally:
        copy.unlink()
    assert len(problems) == 2, problems
    assert problems[0].startswith("image did not load: missing/")
    assert problems[1].startswith("video did not load: missing/") and "error 4" in problems[1]
    assert len(report["images"]) >= 10  # the others still loaded
