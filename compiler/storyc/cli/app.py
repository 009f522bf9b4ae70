"""storyc's command line. The only module that prints and sets exit codes.

Commands are thin: each parses options, calls one module, and turns StorycError into
positioned diagnostics and exit code 1. Heavy modules (Prefect, xai-sdk, PyAV) are
imported inside the commands that need them, never at import time.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from storyc import __version__
from storyc.cli import server as server_cli
from storyc.diagnostics import StorycError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="storyc",
    help="A declarative YAML storyboard compiler: lint, plan and render consistent multi-scene videos.",
    no_args_is_help=True,
    # `storyc completion bash|zsh|fish` prints the script instead: typer's install options
    # would detect the shell on every start.
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Examples:\n\n  storyc lint stories/fox_and_owl.yaml\n\n  storyc build stories/fox_and_owl.yaml\n\n"
        "  storyc COMMAND -h    # each command's options and examples\n\n"
        "Exit codes: 0 ok, 1 bad input or a failed build, 2 usage error, 130 interrupted. "
        "--quiet/--verbose (-q/-v) before a command (or after it on build, clean, cache prune) set the output level; NO_COLOR=1 turns colour off; "
        "storyc completion bash|zsh|fish prints shell completion."
    ),
)


def _examples(*lines: str) -> str:
    """A command's help epilog: one example per paragraph (rich help joins single newlines)."""
    return "Examples:\n\n" + "\n\n".join(f"  {line}" for line in lines)


class _Verbosity:
    """Global --quiet/--verbose (before the subcommand); commands whose output matters
    accept them too. quiet: only errors and the final result line; verbose: per-step and
    per-call detail."""

    quiet = False
    verbose = False


def _usage_error(command: str, message: str) -> NoReturn:
    typer.echo(f"{command}: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _require_backend(command: str, backend: str | None) -> None:
    if backend not in (None, "offline", "xai"):
        _usage_error(command, f"--backend must be offline or xai, not {backend!r}")


def _require_file(command: str, path: Path) -> None:
    if not path.is_file():
        _usage_error(command, f"{path}: no such file")


def _require_prompts_folder(command: str, prompts: Path | None) -> None:
    if prompts is not None and not prompts.is_dir():
        _usage_error(command, f"--prompts {prompts}: no such folder")


def _output_level(command: str, quiet: bool, verbose: bool) -> tuple[bool, bool]:
    quiet, verbose = quiet or _Verbosity.quiet, verbose or _Verbosity.verbose
    if quiet and verbose:
        typer.echo(f"{command}: --quiet and --verbose exclude each other", err=True)
        raise typer.Exit(EXIT_USAGE)
    return quiet, verbose


def _enable_completion() -> None:
    """A shell asking for completions (the script of `storyc completion` sets
    _STORYC_COMPLETE): register typer's completion classes, which add_completion=False
    leaves out. Ordinary starts skip this."""
    import os

    if os.environ.get("_STORYC_COMPLETE"):
        from typer._completion_classes import completion_init

        completion_init()


def _honour_no_color() -> None:
    """NO_COLOR (no-color.org) wins over FORCE_COLOR: typer's rich help and error panels
    and the build progress print no escape sequences at all (rich alone keeps bold, and
    typer forces a terminal under FORCE_COLOR). typer reads this switch when it first
    renders help, so setting it costs nothing at start-up (importing typer.rich_utils to
    patch it would cost ~60 ms on every command)."""
    import os

    if os.environ.get("NO_COLOR"):
        os.environ["_TYPER_FORCE_DISABLE_TERMINAL"] = "1"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"storyc {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the final result line.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Per-step and per-call detail.")] = False,
) -> None:
    """storyc: story.yaml → lint → plan → render → final_video.mp4."""
    _Verbosity.quiet, _Verbosity.verbose = quiet, verbose
    if quiet and verbose:
        typer.echo("storyc: --quiet and --verbose exclude each other", err=True)
        raise typer.Exit(EXIT_USAGE)


def _terminate_like_ctrl_c(signum, frame) -> None:
    # CI runners and `timeout` cancel with SIGTERM: stop as cleanly as on Ctrl-C
    # (calls in flight recorded, state saved, exit 130) instead of dying mid-write.
    raise KeyboardInterrupt


def main() -> None:
    import signal

    server_cli.entry["is_main"] = True  # `storyc build` may hand this process's argv to the engine
    signal.signal(signal.SIGTERM, _terminate_like_ctrl_c)
    _honour_no_color()
    _enable_completion()
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("storyc: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def _input_errors_exit(command: str) -> Iterator[None]:
    """Bad input, a backend that cannot run, or an unwritable folder: one clear line (or
    positioned diagnostics) and exit 1, never a traceback. Secrets are scrubbed."""
    from storyc.backends.base import BackendError

    try:
        yield
    except StorycError as exc:
        _print_diagnostics(exc)
        raise typer.Exit(EXIT_ERROR)
    except BackendError as exc:  # no XAI_API_KEY, a bad fault spec, a failed planning call...
        from storyc.redact import redact

        typer.echo(f"{command}: {redact(exc)}", err=True)
        raise typer.Exit(EXIT_ERROR)
    except OSError as exc:  # read-only or full output folder, unreadable cache...
        typer.echo(f"{command}: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        raise typer.Exit(EXIT_ERROR)


def _print_diagnostics(exc) -> None:
    for diag in exc.diagnostics:
        typer.echo(diag.format(), err=True)


@app.command(
    "graph",
    epilog=_examples(
        "storyc graph stories/fox_and_owl.yaml                  # mermaid, paste into a markdown file",
        "storyc graph stories/fox_and_owl.yaml --format dot | dot -Tsvg > graph.svg",
        "storyc graph story.yaml --format json --backend xai    # the keys an xai build would use",
    ),
)
def graph_command(
    story: Annotated[Path, typer.Argument(help="The story file (YAML, or a seed StoryPlan as JSON).")],
    format: Annotated[str, typer.Option("--format", help="mermaid, dot or json.")] = "mermaid",
    backend: Annotated[
        str | None,
        typer.Option("--backend", help="offline or xai (part of every key). Default: xai when XAI_API_KEY is set."),
    ] = None,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="Cache folder (default .storyc/cache/ beside the story).")
    ] = None,
    prompts: Annotated[Path | None, typer.Option("--prompts", help="Template override folder.")] = None,
) -> None:
    """Print the build graph with each step's cache key ('pending' until its inputs are known) and whether it is cached."""
    import json

    from storyc.build.pipeline import prepare
    from storyc.graph.formats import graph_dot, graph_json, graph_mermaid
    from storyc.graph.resolve import resolve

    if format not in ("mermaid", "dot", "json"):
        typer.echo(f"storyc graph: --format must be mermaid, dot or json, not {format!r}", err=True)
        raise typer.Exit(EXIT_USAGE)
    _require_backend("storyc graph", backend)
    _require_file("storyc graph", story)
    try:
        # Lint errors (unknown character, bad chain_from...) would make the graph lie.
        prep = prepare(story, backend=backend, cache_dir=cache, prompts_dir=prompts, lint=True)
    except StorycError as exc:
        _print_diagnostics(exc)
        raise typer.Exit(EXIT_ERROR)
    res = resolve(prep.graph, prep.cache)
    if format == "json":
        typer.echo(json.dumps(graph_json(prep.graph, res), indent=2))
    elif format == "dot":
        typer.echo(graph_dot(prep.graph, res))
    else:
        typer.echo(graph_mermaid(prep.graph, res))


@app.command(
    "prompts",
    epilog=_examples(
        "storyc prompts stories/fox_and_owl.yaml",
        "storyc prompts stories/fox_and_owl.yaml --scene 2 --format json",
        "storyc prompts story.yaml --prompts my_prompts/        # try a template override",
    ),
)
def prompts_command(
    story: Annotated[Path, typer.Argument(help="The story file (YAML, or a seed StoryPlan as JSON).")],
    scene: Annotated[int | None, typer.Option("--scene", help="Only this scene_id's prompts.")] = None,
    format: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    prompts: Annotated[
        Path | None, typer.Option("--prompts", help="Template override folder (before <story dir>/prompts/).")
    ] = None,
) -> None:
    """Print every prompt a build would send, with the images sent alongside (reference slots)."""
    import json

    from storyc.load.loader import load_story
    from storyc.prompts.listing import format_listing, prompt_listing
    from storyc.prompts.promptset import PromptSet

    if format not in ("text", "json"):
        typer.echo(f"storyc prompts: --format must be text or json, not {format!r}", err=True)
        raise typer.Exit(EXIT_USAGE)
    _require_file("storyc prompts", story)
    _require_prompts_folder("storyc prompts", prompts)
    try:
        loaded = load_story(story)
        # Semantic errors (unknown character, bad chain_from...) would make prompts lie.
        from storyc.lint import lint_story

        # With --prompts, lint's E501 (templates beside the story) may name a template the
        # override replaces; rendering below reports E501 for the templates really in use.
        errors = [d for d in lint_story(loaded) if d.is_error and not (prompts is not None and d.code == "E501")]
        if errors:
            raise StorycError(errors)
        if scene is not None and loaded.story.scene_index(scene) is None:
            typer.echo(f"storyc prompts: {story} has no scene {scene}", err=True)
            raise typer.Exit(EXIT_USAGE)
        entries = prompt_listing(PromptSet(loaded.story, story_path=loaded.path, override_dir=prompts), scene)
    except StorycError as exc:
        for diag in exc.diagnostics:
            typer.echo(diag.format(), err=True)
        raise typer.Exit(EXIT_ERROR)
    if format == "json":
        typer.echo(json.dumps(entries, indent=2, ensure_ascii=False))
    else:
        typer.echo(format_listing(entries), nl=False)


@app.command("schema", epilog=_examples("storyc schema > schemas/story.schema.json"))
def schema_command() -> None:
    """Print the JSON Schema of the story format (the committed copy is schemas/story.schema.json)."""
    from storyc.model.schema_export import story_json_schema_text

    typer.echo(story_json_schema_text(), nl=False)


@app.command(
    "init",
    epilog=_examples(
        "storyc init my-story && cd my-story && storyc build story.yaml",
        "storyc init                                  # into the current folder",
        "storyc init . --force                        # restore the scaffold's files",
    ),
)
def init_command(
    directory: Annotated[Path, typer.Argument(help="Project folder (created if missing).")] = Path("."),
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite existing files that differ from the scaffold.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only errors, kept files and the final result line.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Same as the default: one line per file.")] = False,
) -> None:
    """Scaffold a storyboard project: story.yaml with its JSON Schema, .gitignore, .pre-commit-config.yaml, a GitHub workflow.

    Existing files are kept and listed unless --force. Exit 0 when every file is in place, 1 when the folder or a file cannot be written.
    """
    import shlex

    from storyc.author.scaffold import FAILED, SKIPPED, InitError, scaffold

    quiet, verbose = _output_level("storyc init", quiet, verbose)
    try:
        outcomes = scaffold(directory, force=force)
    except InitError as exc:
        typer.echo(f"storyc init: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR)
    if not quiet:
        for o in outcomes:
            typer.echo(f"{o.status:<12}{o.rel}" + (f"  ({o.reason})" if o.reason else ""))
    skipped = [o.rel for o in outcomes if o.status == SKIPPED]
    failed = [o for o in outcomes if o.status == FAILED]
    if skipped:
        typer.echo(
            f"storyc init: kept {len(skipped)} existing file(s) that differ from the scaffold: "
            f"{', '.join(skipped)}; rerun with --force to overwrite them",
            err=True,
        )
    if failed:
        for o in failed:
            typer.echo(f"storyc init: cannot write {directory / o.rel}: {o.reason}", err=True)
        raise typer.Exit(EXIT_ERROR)
    where = "" if directory.resolve() == Path.cwd().resolve() else f"cd {shlex.quote(str(directory))} && "
    typer.echo(f"next: {where}storyc lint story.yaml && storyc build story.yaml")


@app.command(
    "lint",
    epilog=_examples(
        "storyc lint stories/*.yaml",
        "storyc lint story.yaml --strict --ignore W403,W404",
        "storyc lint story.yaml --format github                 # GitHub Actions annotations",
        "storyc lint --list-rules",
    ),
)
def lint_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Story files (YAML, or a seed StoryPlan as JSON).", show_default=False),
    ] = None,
    format: Annotated[
        str, typer.Option("--format", help="text, json or github (markdown with --list-rules).")
    ] = "text",
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too.")] = False,
    ignore: Annotated[
        str | None,
        typer.Option("--ignore", help="Comma-separated rule codes to skip, e.g. W403,W404.", show_default=False),
    ] = None,
    list_rules: Annotated[
        bool, typer.Option("--list-rules", help="List every rule (code, severity, summary) and exit.")
    ] = False,
) -> None:
    """Check stories for errors and likely problems; print path:line:col: severity CODE message."""
    from storyc.lint import format as lint_format
    from storyc.lint.registry import ALL_RULES, RULES_BY_CODE, SEMANTIC_RULES
    from storyc.lint.runner import lint_paths

    if list_rules:
        renderers = {
            "text": lint_format.rules_text,
            "json": lint_format.rules_json,
            "markdown": lint_format.rules_markdown,
        }
        if format not in renderers:
            typer.echo(f"storyc lint: --list-rules --format must be text, json or markdown, not {format!r}", err=True)
            raise typer.Exit(EXIT_USAGE)
        sys.stdout.write(renderers[format](ALL_RULES))
        return
    if format not in lint_format.FORMATS:
        typer.echo(f"storyc lint: --format must be text, json or github, not {format!r}", err=True)
        raise typer.Exit(EXIT_USAGE)
    if not paths:
        typer.echo("storyc lint: give at least one story file (or --list-rules)", err=True)
        raise typer.Exit(EXIT_USAGE)
    skipped = {code.strip().upper() for code in (ignore or "").split(",") if code.strip()}
    unknown = sorted(code for code in skipped if code not in RULES_BY_CODE)
    not_skippable = sorted(code for code in skipped if code in RULES_BY_CODE and RULES_BY_CODE[code].checked_by_loader)
    if unknown or not_skippable:
        why = (
            f"unknown rule code {', '.join(unknown)}"
            if unknown
            else f"{', '.join(not_skippable)} cannot be ignored (the story cannot load)"
        )
        typer.echo(f"storyc lint: --ignore: {why}; see storyc lint --list-rules", err=True)
        raise typer.Exit(EXIT_USAGE)
    missing = [p for p in paths if not p.exists()]
    if missing:
        for p in missing:
            typer.echo(f"storyc lint: {p}: no such file", err=True)
        raise typer.Exit(EXIT_USAGE)

    diagnostics = lint_paths(paths, tuple(r for r in SEMANTIC_RULES if r.code not in skipped))
    if hasattr(sys.stdout, "reconfigure"):  # an ASCII-only terminal or pipe must not turn 'é' into a traceback
        sys.stdout.reconfigure(errors="backslashreplace")
    sys.stdout.write(lint_format.format_diagnostics(diagnostics, format))
    sys.stdout.flush()
    if format == "text":
        typer.echo(lint_format.summary_line(diagnostics, len(paths)), err=True)
    failed = any(d.is_error for d in diagnostics) or (strict and bool(diagnostics))
    raise typer.Exit(EXIT_ERROR if failed else EXIT_OK)


class _Progress:
    """Build progress: on a terminal, a rich display with the overall bar and one live row
    per running step (its calls so far and the one in progress); otherwise one plain line
    per finished step (CI logs). Verbose adds the plan and a line per call and retry."""

    def __init__(self, total: int, verbose: bool = False):
        self.total = total
        self.verbose = verbose
        self.finished = 0
        self.rich = None
        self.rows: dict[str, int] = {}  # running step → its rich task
        self.calls: dict[str, int] = {}
        if sys.stdout.isatty():
            import os

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
            typer.echo(line)

    def _detail(self, event: str, data) -> None:
        if event == "plan":
            self._say(f"plan: {data['steps']} step(s), {data['to_run']} to run")
        elif event == "prefect_starting":
            self._say("starting Prefect")
        elif event == "call_started":
            self._say(f"  call    {data['step']}  {data['kind']}: {data['what']}")
        elif event == "retry":
            self._say(f"  retry   {data['step']}  {data['kind']} attempt {data['attempt']}: {data.get('error', '')}")

    def __call__(self, event: str, data) -> None:
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
        elif self.rich is not None and event == "call":
            self.calls[data["step"]] = self.calls.get(data["step"], 0) + 1
            self._row(data["step"], f"done {data['what']}")
        elif event == "step_finished":
            self.finished += 1
            rec = data["record"]
            if rec.cached:
                line = f"cached  {rec.id}"
            else:
                score = f"  score {rec.score:.2f}" if rec.score is not None else ""
                line = f"done    {rec.id}  {rec.api_calls} call(s){score}  {rec.wall_s:.1f}s"
            if self.rich is not None:
                self._end_row(rec.id)
                self.rich.console.print(line)
                self.rich.update(self.task, advance=1, count=f"{self.finished}/{self.total}")
            else:
                typer.echo(line)
        elif event == "step_failed":
            error = data.get("error", "")
            line = f"stopped {data['step']}" if error == "interrupted" else f"failed  {data['step']}: {error}"
            if self.rich is not None:
                self._end_row(data["step"])
                self.rich.console.print(line)
            else:
                typer.echo(line)

    def stop(self) -> None:
        if self.rich is not None:
            self.rich.stop()


@app.command(
    "build",
    epilog=_examples(
        "storyc build stories/fox_and_owl.yaml                  # offline without XAI_API_KEY",
        "storyc build story.yaml --dry-run                      # planned calls and cost, no call",
        "storyc build story.yaml --select scene:3+ --max-cost 2",
        "storyc -q build story.yaml --out build/ci              # only errors and the result line",
    ),
)
def build_command(
    story: Annotated[Path, typer.Argument(help="The story file (YAML, or a seed StoryPlan as JSON).")],
    backend: Annotated[
        str | None,
        typer.Option("--backend", help="offline or xai. Default: xai when XAI_API_KEY is set, else offline."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default build/<story stem>/).")] = None,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="Cache folder (default .storyc/cache/ beside the story).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the planned calls and estimated cost; call nothing.")
    ] = False,
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", help="Stop before a call that could take the build past this many USD."),
    ] = None,
    select: Annotated[
        str | None,
        typer.Option("--select", help="Build only these steps: scene:3+, character:Ember+, scene:2, keyframe:3."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Ignore the cache for the selected steps.")] = False,
    prompts: Annotated[Path | None, typer.Option("--prompts", help="Template override folder.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the final result line.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="The plan, and a line per call and retry.")] = False,
) -> None:
    """Compile a story into final_video.mp4 (incremental: only what changed is rendered)."""
    import json

    quiet, verbose = _output_level("storyc build", quiet, verbose)
    _require_backend("storyc build", backend)
    if max_cost is not None and max_cost < 0:
        typer.echo("storyc build: --max-cost must not be negative", err=True)
        raise typer.Exit(EXIT_USAGE)
    _require_file("storyc build", story)

    def options():
        from storyc.build.pipeline import BuildOptions, default_backend_name

        return BuildOptions(
            story=story,
            backend=backend or default_backend_name(),
            out_dir=out,
            cache_dir=cache,
            prompts_dir=prompts,
            dry_run=dry_run,
            max_cost=max_cost,
            select=select,
            force=force,
        )

    def needs_prefect() -> bool:  # asked only when no engine runs: refusals and no-ops never start one
        from storyc.build.pipeline import needs_prefect

        return needs_prefect(options())

    # Before the heavy imports: a warm engine runs this very command, printing here.
    engine_exit = None if dry_run else server_cli.build_in_engine(needs_prefect, quiet=quiet)
    if engine_exit is not None:
        raise typer.Exit(engine_exit)

    from storyc.build.pipeline import run_build
    from storyc.graph.select import SelectionError
    from storyc.store.state import BuildLocked

    opts = options()
    chosen = opts.backend
    if not quiet:
        typer.echo(
            f"storyc build: backend {chosen}"
            + ("" if backend else " (default: " + ("XAI_API_KEY is set)" if chosen == "xai" else "no XAI_API_KEY)"))
        )
    progress = None

    def on_event(event, data):
        nonlocal progress
        if quiet:
            return
        if progress is None:
            progress = _Progress(total=0, verbose=verbose)
        progress(event, data)

    opts.on_event = on_event
    try:
        with _input_errors_exit("storyc build"):
            result = run_build(opts)
    except SelectionError as exc:
        typer.echo(f"storyc build: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE)
    except BuildLocked as exc:
        typer.echo(f"storyc build: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR)
    except KeyboardInterrupt:  # outside the flow (loading, restoring from the cache): nothing half-done
        import shlex

        again = [
            ("--backend", backend),
            ("--out", out),
            ("--cache", cache),
            ("--prompts", prompts),
            ("--select", select),
        ]
        resume = " ".join(
            ["storyc build", shlex.quote(str(story))]
            + [f"{flag} {shlex.quote(str(value))}" for flag, value in again if value]
        )
        typer.echo(f"storyc build: interrupted; state saved. Resume with: {resume}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    finally:
        if progress is not None:
            progress.stop()
    for diag in [] if quiet else result.warnings:
        typer.echo(diag.format(), err=True)
    if result.status == "dry_run":
        d = result.dry_run
        typer.echo(f"dry run: {len(d['steps_to_run'])} step(s) to run, {len(d['steps_cached'])} cached")
        for kind in ("image", "video", "vision", "chat"):
            lo, hi = d["calls_min"][kind], d["calls_max"][kind]
            if hi:
                typer.echo(f"  {kind:<7}{lo:>5} to {hi} call(s)")
        typer.echo(f"  total  {d['calls_min_total']:>5} to {d['calls_max_total']} call(s)")
        typer.echo(
            f"estimated cost: ${d['cost_min_usd']:.2f} (every check passes first time) to "
            f"${d['cost_max_usd']:.2f} (every loop exhausted)"
            + (" at xAI prices; the offline backend itself is free" if d["backend"] == "offline" else "")
        )
        typer.echo(json.dumps(d, sort_keys=True))
        return
    rep = result.report
    if result.status == "missing":
        typer.echo(f"storyc build: {result.message}", err=True)
        raise typer.Exit(EXIT_ERROR)
    if result.status == "up_to_date":
        typer.echo(f"up to date: {result.out_dir}  (0 API calls, {rep.get('cache_hits', 0)} cached steps)")
        return
    summary = (
        f"{rep.get('api_calls_total', 0)} API call(s), {rep.get('cache_hits', 0)} cached step(s), "
        f"${rep.get('cost_usd', 0):.2f}, {rep.get('wall_s', 0):.1f}s"
    )
    if result.status == "built":
        typer.echo(f"{result.message}  ({summary})")
        return
    if result.status == "interrupted":
        # The same folders and options, or the resumed build would miss the cache and pay again.
        import shlex

        again = [
            ("--backend", backend),
            ("--out", out),
            ("--cache", cache),
            ("--prompts", prompts),
            ("--select", select),
        ]
        resume = " ".join(
            ["storyc build", shlex.quote(str(story))]
            + [f"{flag} {shlex.quote(str(value))}" for flag, value in again if value]
        )
        typer.echo(f"storyc build: interrupted ({summary}); state saved. Resume with: {resume}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    typer.echo(f"storyc build: {result.message}  ({summary})", err=True)
    raise typer.Exit(EXIT_ERROR)


@app.command(
    "plan",
    epilog=_examples(
        'storyc plan "A curious fox meets a wise old owl" -o stories/ember.yaml --characters 2 --scenes 3',
    ),
)
def plan_command(
    concept: Annotated[str, typer.Argument(help="The story idea in a sentence or two.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the story.")] = Path("story.yaml"),
    characters: Annotated[
        int | None, typer.Option("--characters", min=1, max=10, help="Exact number of characters.")
    ] = None,
    scenes: Annotated[int | None, typer.Option("--scenes", min=1, max=50, help="Exact number of scenes.")] = None,
    backend: Annotated[
        str | None,
        typer.Option("--backend", help="offline (a marked skeleton) or xai. Default: xai when XAI_API_KEY is set."),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Chat model (default: the story default).")] = None,
    prompts: Annotated[Path | None, typer.Option("--prompts", help="Template override folder.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
) -> None:
    """Plan a story from a concept: one structured-output call, written as commented YAML, then linted."""
    from storyc.author.planner import default_backend_name, run_plan

    _require_backend("storyc plan", backend)
    if not concept.strip():
        typer.echo("storyc plan: the concept is empty", err=True)
        raise typer.Exit(EXIT_USAGE)
    if out.exists() and not force:
        typer.echo(f"storyc plan: {out} exists; choose another -o or pass --force", err=True)
        raise typer.Exit(EXIT_USAGE)
    chosen = backend or default_backend_name()
    typer.echo(
        f"storyc plan: backend {chosen}"
        + ("" if backend else " (default: " + ("XAI_API_KEY is set)" if chosen == "xai" else "no XAI_API_KEY)")),
        err=True,
    )
    with _input_errors_exit("storyc plan"):
        outcome = run_plan(
            concept, out, backend_name=chosen, characters=characters, scenes=scenes, model=model, prompts_dir=prompts
        )
    for diag in outcome.diagnostics:
        typer.echo(diag.format(), err=True)
    for note in outcome.notes:
        typer.echo(f"storyc plan: note: {note}", err=True)
    what = "skeleton" if outcome.skeleton else "story"
    lint_note = "" if outcome.lint_ran else " (lint unavailable: not checked)"
    if outcome.failed:
        typer.echo(
            f"storyc plan: wrote {outcome.path} but it fails lint: {len(outcome.errors)} error(s); "
            f"fix them and run storyc lint {outcome.path}",
            err=True,
        )
        raise typer.Exit(EXIT_ERROR)
    warnings = len(outcome.diagnostics)
    typer.echo(
        f"wrote {what} {outcome.path} ({outcome.backend}, {outcome.calls} call(s), ${outcome.cost_usd:.4f}"
        + (f", {warnings} warning(s)" if warnings else ", lints clean")
        + ")"
        + lint_note
    )


@app.command(
    "deploy",
    epilog=_examples(
        "storyc deploy stories/fox_and_owl.yaml --pool renders --cache /mnt/shared/cache --out /mnt/shared/out/fox",
        "storyc deploy story.yaml --pool renders --create-pool --run     # create a process pool, start one run",
        "PREFECT_API_URL=http://render-host:4200/api prefect worker start --pool renders    # on each worker",
    ),
)
def deploy_command(
    story: Annotated[Path, typer.Argument(help="The story file; workers must see it at the same absolute path.")],
    pool: Annotated[str, typer.Option("--pool", help="The Prefect work pool whose workers run the builds.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Deployment name (default: the story's file stem).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder, on storage the workers mount (default build/<stem>/ here)."),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="Cache folder, on shared storage (default .storyc/cache/ beside the story)."),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend", help="offline or xai. Default: each worker's choice (xai when XAI_API_KEY is set there)."
        ),
    ] = None,
    select: Annotated[
        str | None, typer.Option("--select", help="Build only these steps (as storyc build --select).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Ignore the cache for the selected steps.")] = False,
    prompts: Annotated[
        Path | None,
        typer.Option(
            "--prompts", help="Template override folder, on shared storage (default: prompts/ beside the story)."
        ),
    ] = None,
    create_pool: Annotated[
        bool, typer.Option("--create-pool", help="Create the pool (type process) if it does not exist.")
    ] = False,
    run: Annotated[bool, typer.Option("--run", help="Also start one run of the deployment now.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the result line.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="The same as the default output.")] = False,
) -> None:
    """Register a Prefect deployment that builds STORY on a work pool (needs PREFECT_API_URL)."""
    from storyc.graph.select import SelectionError

    quiet, verbose = _output_level("storyc deploy", quiet, verbose)
    _require_backend("storyc deploy", backend)
    _require_file("storyc deploy", story)
    _require_prompts_folder("storyc deploy", prompts)
    from storyc.deploy import DeployError, deploy

    try:
        with _input_errors_exit("storyc deploy"):
            done = deploy(
                story,
                pool=pool,
                name=name,
                out=out,
                cache=cache,
                backend=backend,
                select=select,
                force=force,
                prompts=prompts,
                create_pool=create_pool,
                run=run,
            )
    except SelectionError as exc:
        typer.echo(f"storyc deploy: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE)
    except DeployError as exc:
        typer.echo(f"storyc deploy: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR)
    params = done.parameters
    typer.echo(
        f"deployed {done.full_name} (id {done.deployment_id}) on work pool {done.pool!r}"
        + (" (created, type process)" if done.pool_created else "")
        + f" at {done.api_url}"
    )
    if quiet:
        if done.flow_run_id:
            typer.echo(f"started flow run {done.flow_run_id}")
        return
    if params.get("prompts"):
        typer.echo(f"  prompts {params['prompts']}")
    typer.echo(f"  story   {params['story']}\n  out     {params['out']}\n  cache   {params['cache']}")
    typer.echo(
        "  backend "
        + (params.get("backend") or "each worker's: xai when XAI_API_KEY is set in its environment, else offline")
    )
    if done.pool_type != "process":
        typer.echo(
            f"note: pool type {done.pool_type!r}: its job image must have storyc installed and these paths mounted"
        )
    typer.echo("start a worker on each machine that has storyc installed and mounts these paths:")
    typer.echo(f"  PREFECT_API_URL={done.api_url} prefect worker start --pool {done.pool}")
    typer.echo("run it:")
    typer.echo(f"  prefect deployment run '{done.full_name}'")
    if done.flow_run_id:
        typer.echo(
            f"started flow run {done.flow_run_id} (named 'render {Path(params['story']).stem}' once a worker starts it); "
            f"follow it: prefect flow-run inspect {done.flow_run_id}"
        )


def _size(n: int) -> str:
    """Bytes for people: 512 B, 3.4 kB, 12.1 MB (powers of 1000, as du --si)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


@app.command(
    "clean",
    epilog=_examples(
        "storyc clean stories/fox_and_owl.yaml       # removes build/fox_and_owl/",
        "storyc clean story.yaml --out build/preview --dry-run",
    ),
)
def clean_command(
    story: Annotated[Path, typer.Argument(help="The story whose build output to remove.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="The output folder (default build/<story stem>/, as build).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be removed; remove nothing.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the final result line.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every file removed.")] = False,
) -> None:
    """Remove a story's build output folder (the cache is not touched).

    Only storyc output is removed (a folder with .storyc.lock, state.json or report.json),
    never while a build writes it and never through a symbolic link. The cache is NOT
    touched: use storyc cache prune for that. A missing folder is not an error.
    """
    from storyc.build.pipeline import default_out_dir
    from storyc.store.clean import CleanRefused, clean_output

    quiet, verbose = _output_level("storyc clean", quiet, verbose)
    if out is None and not story.is_file():
        typer.echo(f"storyc clean: {story}: no such file (give --out to clean a folder whose story is gone)", err=True)
        raise typer.Exit(EXIT_USAGE)
    folder = out if out is not None else default_out_dir(story)
    try:
        with _input_errors_exit("storyc clean"):
            result = clean_output(folder, story=story if story.is_file() else None, dry_run=dry_run)
    except CleanRefused as exc:
        typer.echo(f"storyc clean: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR)
    if result.missing:
        typer.echo(f"{folder}: nothing to clean")
        return
    if (dry_run and not quiet) or verbose:
        for rel, size in result.files:
            typer.echo(f"{'would remove' if dry_run else 'removed'} {folder / rel}  ({_size(size)})")
    summary = f"{folder}: {len(result.files)} file(s), {_size(result.total_bytes)} ({result.total_bytes} bytes)"
    typer.echo(f"would remove {summary}" if dry_run else f"removed {summary} (the cache is kept)")


app.add_typer(server_cli.server_app, name="server")
cache_app = typer.Typer(help="Manage the build cache (default .storyc/cache/ beside the story).", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command(
    "prune",
    epilog=_examples(
        "storyc cache prune stories/fox_and_owl.yaml --dry-run",
        "storyc cache prune stories/*.yaml --cache /mnt/shared/cache",
    ),
)
def cache_prune_command(
    stories: Annotated[list[Path], typer.Argument(help="Every story whose entries to keep.", show_default=False)],
    cache: Annotated[
        Path | None, typer.Option("--cache", help="Cache folder (default .storyc/cache/ beside the first story).")
    ] = None,
    prompts: Annotated[Path | None, typer.Option("--prompts", help="Template override folder the builds use.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be removed; remove nothing.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the final result line.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every file removed.")] = False,
) -> None:
    """Remove cache entries the given stories can no longer use; report what was freed.

    Keys are resolved as a build resolves them (under either backend): every step still
    reachable is kept with its objects, and so are the per-call entries an unfinished
    step may resume from. Temp files of dead processes go too. Name every story that
    shares the cache: entries of stories not named are removed.
    """
    from storyc.store.cache import CacheBusy, cache_in_use, default_cache_dir
    from storyc.store.prune import apply_prune, plan_prune

    quiet, verbose = _output_level("storyc cache prune", quiet, verbose)
    missing = [s for s in stories if not s.is_file()]
    if missing:
        for s in missing:
            typer.echo(f"storyc cache prune: {s}: no such file", err=True)
        raise typer.Exit(EXIT_USAGE)
    _require_prompts_folder("storyc cache prune", prompts)
    try:
        with _input_errors_exit("storyc cache prune"):
            if dry_run:
                plan = plan_prune(stories, cache_dir=cache, prompts_dir=prompts)
                freed = plan.freed_bytes
            else:
                # Builds of any story hold the cache shared: refused while one runs, and
                # none starts between deciding and removing.
                with cache_in_use(cache or default_cache_dir(stories[0]), exclusive=True):
                    plan = plan_prune(stories, cache_dir=cache, prompts_dir=prompts)
                    freed = apply_prune(plan)
    except CacheBusy as exc:
        typer.echo(f"storyc cache prune: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR)
    if (dry_run and not quiet) or verbose:
        for r in plan.removals:
            typer.echo(f"{'would remove' if dry_run else 'removed'} {r.path}  ({_size(r.size)})")
    for story in plan.unbuilt_stories:
        typer.echo(
            f"storyc cache prune: warning: {story} has no finished step in this cache (never built into it, or "
            "built with other --prompts or STORYC_RENDER_SCALE, which are part of every key)",
            err=True,
        )
    if plan.calls_kept_for_open_steps and not quiet:
        typer.echo(
            f"storyc cache prune: note: kept {plan.calls_kept_for_open_steps} per-call entr(ies) a build of "
            f"the {plan.open_steps} unbuilt step(s) may resume from (a call entry does not record its step's "
            "key); prune again after building",
            err=True,
        )
    counts = ", ".join(
        f"{plan.removed(t)} {name}"
        for t, name in (
            ("steps", "step entries"),
            ("calls", "call entries"),
            ("objects", "objects"),
            ("temps", "temp files"),
        )
    )
    kept = f"kept {plan.kept['steps']} step, {plan.kept['calls']} call entries and {plan.kept['objects']} objects, {_size(plan.kept_bytes)}"
    typer.echo(
        f"{'would free' if dry_run else 'freed'} {_size(freed)} ({freed} bytes) in {plan.cache_dir}: {counts}; {kept}"
    )


@app.command(
    "completion",
    epilog=_examples(
        'eval "$(storyc completion bash)"       # this shell only',
        "storyc completion bash > ~/.local/share/bash-completion/completions/storyc",
        "storyc completion zsh > ~/.zfunc/_storyc    # fpath+=~/.zfunc before compinit",
        "storyc completion fish > ~/.config/fish/completions/storyc.fish",
    ),
)
def completion_command(shell: Annotated[str, typer.Argument(help="bash, zsh or fish.")]) -> None:
    """Print the shell completion script (commands, options, file names)."""
    if shell not in ("bash", "zsh", "fish"):
        typer.echo(f"storyc completion: the shell must be bash, zsh or fish, not {shell!r}", err=True)
        raise typer.Exit(EXIT_USAGE)
    # typer's own script, so that it matches the handler every storyc start runs when
    # _STORYC_COMPLETE is set (typer >= 0.12 keeps it in _completion_shared).
    from typer._completion_shared import get_completion_script

    typer.echo(get_completion_script(prog_name="storyc", complete_var="_STORYC_COMPLETE", shell=shell))
