"""The build's progress, from the build's events.

On a terminal, a rich display with the overall bar and one live row per running step (its
calls so far and the one in progress); otherwise one plain line per finished step (CI
logs). Verbose adds the plan and a line per call and retry.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from storyc.cli.output import out


def below_threshold(score: float | None, threshold: float | None) -> str:
    """ " ▼ below 0.80" after a score under the story's consistency_threshold, else ""."""
    if score is None or threshold is None or score >= threshold:
        return ""
    return f" ▼ below {threshold:.2f}"


def low_scores_summary(report: Mapping[str, Any]) -> str | None:
    """The build's kept takes that ended below the threshold, in one line, or None."""
    low = report.get("below_threshold") or []
    if not low:
        return None
    steps = ", ".join(f"{s['id']} {s['score']:.2f}" for s in low)
    return (
        f"{len(low)} take(s) kept below the {report.get('threshold', 0):.2f} threshold "
        f"(the best of their attempts): {steps}. Look at them in the storyboard; "
        "--redo TARGET --note TEXT tries again, --strict makes this an error"
    )


def build_summary(report: Mapping[str, Any]) -> str:
    """A build's calls, cache hits, cost and time, from its report."""
    return (
        f"{report.get('api_calls_total', 0)} API call(s), {report.get('cache_hits', 0)} cached step(s), "
        f"${report.get('cost_usd', 0):.2f}, {report.get('wall_s', 0):.1f}s"
    )


class BuildProgress:
    def __init__(self, total: int, verbose: bool = False, show_cached: bool = True):
        self.total = total
        self.verbose = verbose
        self.show_cached = show_cached  # a line per step restored from the cache (watch rebuilds: none)
        self.finished = 0
        self.rich: Any = None
        self.rows: dict[str, Any] = {}  # running step → its rich task
        self.calls: dict[str, int] = {}
        if sys.stdout.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.rich = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[count]}"),
                TimeElapsedColumn(),
                transient=False,
                console=Console(color_system=None) if os.environ.get("NO_COLOR") else None,  # no bold either
            )
            self.task = self.rich.add_task("building", total=total, count=f"0/{total}")
            self.rich.start()

    def __call__(self, event: str, data: Mapping[str, Any]) -> None:
        if self.verbose:
            self._detail(event, data)
        if event == "plan":
            self.total = data["steps"]
            if self.rich is not None:
                self.rich.update(self.task, total=self.total, count=f"{self.finished}/{self.total}")
        elif self.rich is not None and event == "prefect_starting":
            self.rich.update(self.task, description="starting Prefect")
        elif self.rich is not None and event == "step_started":
            self.rich.update(self.task, description="building")
            self._row(data["step"], "running")
        elif self.rich is not None and event == "call_started":
            self._row(data["step"], f"{data['kind']}: {data['what']}")
        elif self.rich is not None and event == "call_progress":  # a video job rendering at the provider
            self._row(data["step"], f"{data['kind']}: {data['what']} {data['percent']}%")
        elif self.rich is not None and event == "call":
            self.calls[data["step"]] = self.calls.get(data["step"], 0) + 1
            self._row(data["step"], f"done {data['what']}")
        elif event == "step_finished":
            self.finished += 1
            rec = data["record"]
            low = below_threshold(rec.score, data.get("threshold"))
            if rec.cached:
                line = f"cached  {rec.id}" + (f"  score {rec.score:.2f}{low}" if low else "")
            else:
                score = f"  score {rec.score:.2f}{low}" if rec.score is not None else ""
                line = f"done    {rec.id}  {rec.api_calls} call(s){score}  {rec.wall_s:.1f}s"
            self._end_row(rec.id)
            if self.show_cached or not rec.cached:
                self._say(line)
            if self.rich is not None:
                self.rich.update(self.task, advance=1, count=f"{self.finished}/{self.total}")
        elif event == "step_failed":
            error = data.get("error", "")
            self._end_row(data["step"])
            self._say(f"stopped {data['step']}" if error == "interrupted" else f"failed  {data['step']}: {error}")

    def stop(self) -> None:
        if self.rich is not None:
            self.rich.stop()

    def _detail(self, event: str, data: Mapping[str, Any]) -> None:
        if event == "plan":
            self._say(f"plan: {data['steps']} step(s), {data['to_run']} to run")
        elif event == "prefect_starting":
            self._say("starting Prefect")
        elif event == "call_started":
            self._say(f"  call    {data['step']}  {data['kind']}: {data['what']}")
        elif event == "retry":
            self._say(f"  retry   {data['step']}  {data['kind']} attempt {data['attempt']}: {data.get('error', '')}")

    def _row(self, step: str, doing: str) -> None:
        text = f"  {step}  {self.calls.get(step, 0)} call(s)  {doing}"
        if step in self.rows:
            self.rich.update(self.rows[step], description=text)
        else:
            self.rows[step] = self.rich.add_task(text, total=None, count="")

    def _end_row(self, step: str) -> None:
        task = self.rows.pop(step, None)
        if task is not None:
            self.rich.remove_task(task)

    def _say(self, line: str) -> None:
        if self.rich is not None:
            self.rich.console.print(line, markup=False, highlight=False)
        else:
            out(line)
