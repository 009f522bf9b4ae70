"""Approval inside Prefect against a real local server and a real process worker (the
fixtures of test_prefect_server.py): `storyc deploy --approve keyframes --run` pauses the
flow run after the keyframes with a RunInput form listing each scene's takes; the answer is
submitted through Prefect's client (`storyc approve --run RUN_ID`); the run resumes,
pins the approved take, redoes the other keyframe with its note, renders the clips and
ends COMPLETED."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from storyc.store.hashing import file_sha256
from test_prefect_server import (  # noqa: F401  (fixtures)
    STORYC,
    TIMINGS,
    _run,
    _wait_final,
    prefect_server,
    process_pool_worker,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STORY = """\
title: Harbour approval
style: flat vector illustration with bold outlines and soft pastel shading
color_palette: teal, coral, cream
characters:
  - {name: Ava, role: protagonist, visual_description: a tall woman with short red hair and a yellow raincoat, personality_cues: [bold]}
scenes:
  - {scene_id: 1, title: Ava at the pier, description: Ava walks along the pier., characters_present: [Ava],
     setting: wooden pier at dawn, camera: "wide shot, slow pan", mood: calm, action: Ava walks toward the sea,
     duration_seconds: 3}
  - {scene_id: 2, title: Ava waves, description: Ava waves at a boat., characters_present: [Ava],
     setting: wooden pier at dawn, camera: medium shot, mood: warm, action: Ava waves at a passing boat,
     duration_seconds: 3, chain_source: keyframe}
"""
NOTE = "the boat must have a red sail"


def _wait_paused(client, run_id: str, worker_log: Path, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while True:
        flow_run = client.read_flow_run(run_id)
        if flow_run.state and flow_run.state.is_paused():
            return flow_run
        if flow_run.state and flow_run.state.is_final():
            pytest.fail(f"flow run ended {flow_run.state_name} before pausing:\n{worker_log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"flow run still {flow_run.state_name} after {timeout} s:\n{worker_log.read_text()[-3000:]}")
        time.sleep(0.5)


def test_a_deployment_pauses_for_the_keyframe_review_and_resumes_with_the_answer(
    prefect_server, process_pool_worker, tmp_path
):
    from prefect.client.schemas.objects import StateType

    pool, worker_log = process_pool_worker
    shared = tmp_path / "shared"
    shared.mkdir()
    story = shared / "harbour.yaml"
    story.write_text(STORY)
    out, cache = shared / "out", shared / "cache"
    env = prefect_server.env(tmp_path / "deploy-home")

    t0 = time.perf_counter()
    deployed = _run(
        [
            *STORYC,
            "deploy",
            str(story),
            "--pool",
            pool,
            "--cache",
            str(cache),
            "--out",
            str(out),
            "--approve",
            "keyframes",
            "--run",
        ],
        env,
        tmp_path,
    )
    assert deployed.returncode == 0, deployed.stderr
    assert "pauses after the keyframes for a review" in deployed.stdout
    run_id = re.search(r"started flow run ([0-9a-f-]{36}) ", deployed.stdout).group(1)

    with prefect_server.client() as client:
        assert client.read_deployment_by_name(f"storyc-render/{story.stem}").parameters["approve"] == "keyframes"
        paused = _wait_paused(client, run_id, worker_log)
        TIMINGS["approval_pause_s"] = time.perf_counter() - t0
        # the form Prefect stored for the pause: three fields per scene, the kept take by default
        keyset = paused.state.state_details.run_input_keyset
        schema = json.loads(client.read_flow_run_input(paused.id, keyset["schema"]))
        description = json.loads(client.read_flow_run_input(paused.id, keyset["description"]))
    fields = schema["properties"]
    assert set(fields) == {f"scene_{n}_{f}" for n in (1, 2) for f in ("take", "approve", "redo_note")}
    assert fields["scene_1_approve"]["default"] is True and fields["scene_1_take"]["minimum"] == 1
    kept_1 = fields["scene_1_take"]["default"]
    assert "**Scene 1**" in description and f"take {kept_1}" in description and "kept" in description
    # no clip was rendered before the review; the keyframes were
    state = json.loads((out / "state.json").read_text())
    assert "video:1" not in state["steps"] and state["steps"]["keyframe:2"]["status"] == "done"
    take_1 = state["steps"]["keyframe:1"]["sha256"]["keyframe"]

    # the answer, through Prefect's client: approve scene 1, redo scene 2 with a note
    answered = _run(
        [*STORYC, "approve", "--run", run_id, "scene:1", "--redo", "scene:2", "--note", NOTE], env, tmp_path
    )
    assert answered.returncode == 0, answered.stderr
    assert f"answered flow run {run_id}: approve scene:1 take {kept_1}; redo scene:2" in answered.stdout

    with prefect_server.client() as client:
        flow_run, _ = _wait_final(client, run_id, worker_log, timeout=240)
    TIMINGS["approval_run_s"] = time.perf_counter() - t0
    assert flow_run.state_type == StateType.COMPLETED, worker_log.read_text()[-3000:]
    # the approved take is pinned in the story (on the shared storage) and was used as is
    assert "keyframe_image: approved/keyframe_scene_1.jpg" in story.read_text()
    assert file_sha256(shared / "approved" / "keyframe_scene_1.jpg") == take_1
    report = json.loads((out / "report.json").read_text())
    steps = {s["id"]: s for s in report["steps"]}
    assert report["status"] == "built" and report["approvals"]["pinned"] == 1
    assert steps["keyframe:1"]["api_calls"] == 0
    state = json.loads((out / "state.json").read_text())
    assert state["steps"]["keyframe:1"]["sha256"]["keyframe"] == take_1
    # the redo: scene 2's keyframe generated again with the note, and the clips rendered
    assert state["steps"]["keyframe:2"]["prompts"]["compose"].endswith(NOTE + ".")
    assert steps["keyframe:2"]["api_calls"] > 0 and steps["video:2"]["status"] == "done"
    assert (out / "final_video.mp4").is_file()
    log = worker_log.read_text()
    assert "storyc render: paused for the review of 2 keyframe(s)" in log
    assert f"approved scene:1 take {kept_1} → approved/keyframe_scene_1.jpg" in log

    # a run that is not paused cannot be answered
    again = _run([*STORYC, "approve", "--run", run_id, "scene:1"], env, tmp_path)
    assert again.returncode == 1 and "is not paused for a review (Completed)" in again.stderr
