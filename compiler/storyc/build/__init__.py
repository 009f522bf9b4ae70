"""`storyc build` end to end.

options (BuildOptions, BuildResult), backend_choice (which backend, and making it),
prepare (load, lint, prompts, graph), pipeline (run_build), report_json (report.json's data).
"""
