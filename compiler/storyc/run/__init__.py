"""Running a build's steps.

context (BuildContext: what every runner reads), calls (StepRun: every paid call, with
its memo), budget (--max-cost), retry (backoff), errors, outcome (what a step produced);
one module per step kind: character, keyframe, video, assemble, script; dispatch (one
step: cache hit or runner), local (API-free steps in process), executor (the Prefect flow).
"""
