"""`storyc init`: the scaffolded project works for real: its story lints strictly, its
GitHub workflow's shell steps run locally (lint, offline render, the files the upload
steps name), its pre-commit hook runs through pre-commit, and the repository's own
`.pre-commit-hooks.yaml` installs and runs through `pre-commit try-repo`."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from storyc.author.scaffold import FILES, template_bytes

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent  # storyc, pre-commit: the test interpreter's scripts
SCAFFOLD = [rel for rel, _ in FILES]
WORKFLOW = ".github/workflows/storyc.yml"
SECRET = "xai-test-secret-0123456789abcdef"


def storyc(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "storyc", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def load_yaml(path: Path):
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def statuses(stdout: str) -> dict[str, str]:
    return {
        line.split()[1]: line.split()[0]
        for line in stdout.splitlines()
        if line.split()[:1] and line.split()[0] in ("created", "unchanged", "skipped", "overwritten", "failed")
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """One scaffolded project, never modified (tests copy it to change things)."""
    root = tmp_path_factory.mktemp("init") / "my-story"
    result = storyc("init", str(root))
    assert result.returncode == 0, result.stderr
    assert statuses(result.stdout) == dict.fromkeys(SCAFFOLD, "created")
    return root


def copy_project(project: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(project, dest)
    return dest


# ─── the scaffold itself ─────────────────────────────────────────────────────


def test_scaffold_files_exist_parse_and_the_story_lints_strictly(project):
    for rel in SCAFFOLD:
        assert (project / rel).is_file(), rel
    for rel in ("story.yaml", ".pre-commit-config.yaml", WORKFLOW):
        assert load_yaml(project / rel), rel
    lint = storyc("lint", "--strict", "story.yaml", cwd=project)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert lint.stdout == ""
    story = load_yaml(project / "story.yaml")
    assert len(story["scenes"]) == 2 and all(3 <= s["duration_seconds"] <= 4 for s in story["scenes"])
    assert ".storyc/" in (project / ".gitignore").read_text().splitlines()
    assert "build/" in (project / ".gitignore").read_text().splitlines()


def test_the_schema_modeline_resolves_offline_to_storycs_schema(project):
    first = (project / "story.yaml").read_text().splitlines()[0]
    m = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert m, first
    target = (project / m.group(1)).resolve()
    assert target.is_file() and target.parent == project.resolve()  # relative, inside the project
    assert target.read_text() == storyc("schema").stdout
    assert target.read_bytes() == (REPO / "schemas" / "story.schema.json").read_bytes()


def test_second_init_changes_no_byte_and_force_restores_edits(project, tmp_path):
    root = copy_project(project, tmp_path)
    before = snapshot(root)
    again = storyc("init", str(root))
    assert again.returncode == 0, again.stderr
    assert statuses(again.stdout) == dict.fromkeys(SCAFFOLD, "unchanged")
    assert snapshot(root) == before  # bytes and mtimes

    (root / ".gitignore").write_text("my own ignores\n")
    (root / "story.yaml").write_text("# my story\n")
    kept = storyc("init", str(root))
    assert kept.returncode == 0
    assert statuses(kept.stdout)["story.yaml"] == "skipped" and statuses(kept.stdout)[".gitignore"] == "skipped"
    assert "story.yaml" in kept.stderr and "--force" in kept.stderr
    assert (root / "story.yaml").read_text() == "# my story\n"

    forced = storyc("init", str(root), "--force")
    assert forced.returncode == 0, forced.stderr
    assert statuses(forced.stdout) == {
        rel: ("overwritten" if rel in ("story.yaml", ".gitignore") else "unchanged") for rel in SCAFFOLD
    }
    for rel, source in FILES:
        assert (root / rel).read_bytes() == template_bytes(source), rel


def test_init_keeps_a_users_files_and_creates_the_rest(tmp_path):
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "storyc.yml").write_text("name: mine\n")
    (tmp_path / ".gitignore").write_text("*.log\n")
    result = storyc("init", cwd=tmp_path)  # DIR defaults to .
    assert result.returncode == 0, result.stderr
    st = statuses(result.stdout)
    assert st[WORKFLOW] == "skipped" and st[".gitignore"] == "skipped" and st["story.yaml"] == "created"
    assert (tmp_path / WORKFLOW).read_text() == "name: mine\n"
    assert (tmp_path / ".gitignore").read_text() == "*.log\n"
    assert "kept 2 existing file(s)" in result.stderr


def test_init_creates_missing_folders_and_refuses_a_file(tmp_path):
    nested = tmp_path / "a" / "b"
    assert storyc("init", str(nested)).returncode == 0
    assert (nested / "story.yaml").is_file()

    result = storyc("init", str(nested / "story.yaml"))
    assert result.returncode == 1
    assert "is not a folder" in result.stderr and "Traceback" not in result.stderr


def test_a_folder_in_the_way_is_an_error_but_the_rest_is_written(tmp_path):
    (tmp_path / "story.yaml").mkdir()
    result = storyc("init", str(tmp_path), "--force")
    assert result.returncode == 1
    assert statuses(result.stdout)["story.yaml"] == "failed"
    assert "cannot write" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / ".gitignore").is_file() and (tmp_path / "story.yaml").is_dir()


# ─── the GitHub workflow, emulated locally ───────────────────────────────────


class Expressions:
    """The few `${{ }}` forms the workflow's env uses; anything else fails the test, so a
    new expression is noticed rather than silently emulated wrong."""

    def __init__(self, secrets: dict[str, str] | None = None, variables: dict[str, str] | None = None):
        self.secrets, self.variables = secrets or {}, variables or {}

    def __call__(self, value) -> str:
        def one(m: re.Match) -> str:
            expr = m.group(1).strip()
            if s := re.fullmatch(r"secrets\.(\w+)", expr):
                return self.secrets.get(s.group(1), "")  # an absent secret is ''
            if v := re.fullmatch(r"vars\.(\w+) \|\| '([^']*)'", expr):
                return self.variables.get(v.group(1)) or v.group(2)
            raise AssertionError(f"expression the emulation does not know: {expr}")

        return re.sub(r"\$\{\{(.*?)\}\}", one, str(value))


def workflow(project: Path) -> dict:
    return load_yaml(project / WORKFLOW)


def steps(project: Path) -> list[dict]:
    jobs = workflow(project)["jobs"]
    assert list(jobs) == ["storyboard"]
    return jobs["storyboard"]["steps"]


def step_named(project: Path, name: str) -> dict:
    return next(s for s in steps(project) if s.get("name") == name)


def runner_env(root: Path, tmp: Path, step: dict, expr: Expressions, path_prefix: list[Path] = ()) -> dict[str, str]:
    # the session's build engine is kept (conftest.py): a build here must not start one in ~/.cache
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "XAI_", "STORYC_")) or k.startswith("STORYC_ENGINE_")
    }
    (tmp / "runner").mkdir(exist_ok=True)
    for name in ("summary", "output", "env", "path"):
        (tmp / "runner" / name).touch()
    env.update(
        CI="true",
        GITHUB_ACTIONS="true",
        GITHUB_WORKSPACE=str(root),
        GITHUB_EVENT_NAME="push",
        GITHUB_REF="refs/heads/main",
        GITHUB_SHA="0" * 40,
        RUNNER_OS="Linux",
        RUNNER_TEMP=str(tmp / "runner"),
        GITHUB_STEP_SUMMARY=str(tmp / "runner" / "summary"),
        GITHUB_OUTPUT=str(tmp / "runner" / "output"),
        GITHUB_ENV=str(tmp / "runner" / "env"),
        GITHUB_PATH=str(tmp / "runner" / "path"),
        PATH=os.pathsep.join([*map(str, path_prefix), str(VENV_BIN), env.get("PATH", "")]),
        STORYC_RENDER_SCALE="0.25",  # a quick preview; the workflow itself renders full size
    )
    wf = workflow(root)
    for scope in (wf.get("env", {}), wf["jobs"]["storyboard"].get("env", {}), step.get("env", {})):
        env.update({k: expr(v) for k, v in scope.items()})
    return env


def run_step(
    root: Path, tmp: Path, step: dict, expr: Expressions | None = None, path_prefix=()
) -> subprocess.CompletedProcess:
    # `defaults.run.shell: bash` runs each script as GitHub does: bash --noprofile --norc -eo pipefail
    assert workflow(root)["defaults"]["run"]["shell"] == "bash"
    script = tmp / "step.sh"
    script.write_text(step["run"])
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=root,
        env=runner_env(root, tmp, step, expr or Expressions(), path_prefix),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_workflow_shape_and_secret_handling(project):
    wf = workflow(project)
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 readers turn `on` into True
    assert "push" in triggers and "pull_request" in triggers
    all_steps = steps(project)
    uses = [s["uses"].split("@")[0] for s in all_steps if "uses" in s]
    assert uses.count("actions/upload-artifact") == 2 and "actions/checkout" in uses
    for step in all_steps:
        # no expression inside a script (injection-safe); values reach scripts via env only
        assert "${{" not in step.get("run", ""), step.get("name")
    text = (project / WORKFLOW).read_text()
    assert text.count("secrets.XAI_API_KEY") == 1
    assert step_named(project, "Render")["env"] == {"XAI_API_KEY": "${{ secrets.XAI_API_KEY }}"}
    assert "echo" not in " ".join(
        line for line in step_named(project, "Render")["run"].splitlines() if "XAI_API_KEY" in line
    )
    assert "STORYC_SPEC" in step_named(project, "Install storyc")["run"]
    lint = step_named(project, "Lint")["run"]
    assert "storyc lint" in lint and "--format github" in lint


@pytest.mark.slow
def test_workflow_runs_locally_lint_render_and_the_uploaded_files_exist(project, tmp_path):
    root = copy_project(project, tmp_path)
    ran = []
    for step in steps(root):
        if "uses" in step or step.get("id") == "install":  # actions run on GitHub; storyc is installed here
            continue
        result = run_step(root, tmp_path, step)
        assert result.returncode == 0, f"{step.get('name')}:\n{result.stdout}\n{result.stderr}"
        ran.append(step["name"])
        if step["name"] == "Lint":
            assert "::error" not in result.stdout and "::warning" not in result.stdout
        if step["name"] == "Render":
            assert "backend offline" in result.stdout, result.stdout
    assert ran == ["Lint", "Render"]
    assert "offline backend" in (tmp_path / "runner" / "summary").read_text()
    uploads = [s for s in steps(root) if s.get("uses", "").startswith("actions/upload-artifact@")]
    named = [line.strip() for s in uploads for line in s["with"]["path"].splitlines() if line.strip()]
    assert "build/storyboard/final_video.mp4" in named and "build/storyboard/storyboard.html" in named
    for pattern in named:
        matches = glob.glob(pattern, root_dir=root)
        assert matches, f"the upload step names {pattern}, which the render did not produce"
        for match in matches:
            p = root / match
            assert (p.is_file() and p.stat().st_size > 0) or (p.is_dir() and any(p.iterdir())), match
    # the storyboard page refers only to files the storyboard artifact carries
    page = (root / "build/storyboard/storyboard.html").read_text()
    for ref in set(re.findall(r'(?:src|href)="([^"#:]+)"', page)):
        assert any(
            ref == n.removeprefix("build/storyboard/") or ref.startswith(n.removeprefix("build/storyboard/"))
            for n in named
            if n.startswith("build/storyboard/")
        ), ref
    # the scaffold's .gitignore keeps the render and its cache out of git
    assert (root / ".storyc" / "cache").is_dir() and (root / "build/storyboard/.storyc.lock").exists()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    untracked = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    assert sorted(line[3:] for line in untracked.splitlines()) == sorted(SCAFFOLD)


def test_workflow_lint_step_annotates_a_broken_story(project, tmp_path):
    root = copy_project(project, tmp_path)
    story = root / "story.yaml"
    story.write_text(story.read_text().replace("duration_seconds: 4", "duration_seconds: 90", 1))
    result = run_step(root, tmp_path, step_named(root, "Lint"))
    assert result.returncode == 1
    assert re.search(r"^::error file=story\.yaml,line=\d+,col=\d+,title=E204::", result.stdout, re.M), result.stdout


def fake_tools(tmp: Path) -> Path:
    """`storyc` and `python` stand-ins that log their arguments and environment checks."""
    bin_dir = tmp / "fakebin"
    bin_dir.mkdir()
    for name in ("storyc", "python"):
        tool = bin_dir / name
        tool.write_text(
            f'#!/bin/sh\necho "{name} $*" >> "{tmp}/calls.log"\n'
            f'[ -n "$XAI_API_KEY" ] && echo "{name} saw a key" >> "{tmp}/calls.log"\nexit 0\n'
        )
        tool.chmod(0o755)
    return bin_dir


def test_render_step_uses_xai_only_with_the_secret_and_never_prints_it(project, tmp_path):
    fakes = fake_tools(tmp_path)
    render = step_named(project, "Render")
    with_key = run_step(project, tmp_path, render, Expressions(secrets={"XAI_API_KEY": SECRET}), [fakes])
    assert with_key.returncode == 0, with_key.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls == ["storyc build story.yaml --backend xai --max-cost 5 --out build/storyboard", "storyc saw a key"]
    assert SECRET not in with_key.stdout + with_key.stderr + (tmp_path / "runner" / "summary").read_text()

    (tmp_path / "calls.log").unlink()
    without = run_step(project, tmp_path, render, Expressions(variables={"STORYC_MAX_COST": "2.5"}), [fakes])
    assert without.returncode == 0, without.stderr
    assert (tmp_path / "calls.log").read_text().splitlines() == [
        "storyc build story.yaml --backend offline --out build/storyboard"
    ]


def test_install_step_refuses_the_placeholder_and_installs_the_configured_spec(project, tmp_path):
    fakes = fake_tools(tmp_path)
    install = step_named(project, "Install storyc")
    refused = run_step(project, tmp_path, install, Expressions(), [fakes])
    assert refused.returncode == 1
    assert refused.stdout.startswith("::error title=storyc is not configured::")
    assert not (tmp_path / "calls.log").exists()  # pip never ran

    spec = "storyc @ git+https://example.org/team/storyc@v0.1.0"
    ok = run_step(project, tmp_path, install, Expressions(variables={"STORYC_SPEC": spec}), [fakes])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (tmp_path / "calls.log").read_text().splitlines() == [
        f"python -m pip install --disable-pip-version-check {spec}",
        "storyc --version",
    ]


# ─── pre-commit, for real ────────────────────────────────────────────────────


def git_project(project: Path, tmp_path: Path) -> tuple[Path, dict]:
    root = copy_project(project, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env.update(
        PATH=os.pathsep.join([str(VENV_BIN), env.get("PATH", "")]),
        PRE_COMMIT_HOME=str(tmp_path / "pc-home"),
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.org",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.org",
    )
    subprocess.run(["git", "init", "-q", str(root)], check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)
    return root, env


def pre_commit(args: list[str], root: Path, env: dict, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "pre-commit"), *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout
    )


def break_story(root: Path, env: dict) -> None:
    story = root / "story.yaml"
    story.write_text(story.read_text().replace("characters_present: [Mira]", "characters_present: [Mirra]", 1))
    subprocess.run(["git", "add", "story.yaml"], cwd=root, check=True, env=env)


def test_the_scaffolds_local_pre_commit_hook_passes_and_blocks_errors(project, tmp_path):
    root, env = git_project(project, tmp_path)
    ok = pre_commit(["run", "--all-files"], root, env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert re.search(r"^storyc lint\.+Passed$", ok.stdout, re.M), ok.stdout

    break_story(root, env)
    bad = pre_commit(["run", "--all-files"], root, env)
    assert bad.returncode == 1
    assert re.search(r"^storyc lint\.+Failed$", bad.stdout, re.M)
    assert re.search(r"^story\.yaml:\d+:\d+: error E303 .*Mirra", bad.stdout, re.M), bad.stdout


HOOK_FILES = {
    "story.yaml": True,
    "story.yml": True,
    "sub/story.yaml": True,
    "intro.story.yaml": True,
    "stories/fox.yaml": True,
    "stories/fox.yml": True,
    ".pre-commit-config.yaml": False,
    WORKFLOW: False,
    "story.schema.json": False,
    "notes/story.md": False,
    "history.yaml": False,
    "stories/prompts/keyframe.j2": False,
}


def test_repository_hooks_file_and_the_scaffold_hook_agree():
    hooks = load_yaml(REPO / ".pre-commit-hooks.yaml")
    assert [h["id"] for h in hooks] == ["storyc-lint"]
    hook = hooks[0]
    assert hook["entry"] == "storyc lint" and hook["language"] == "python" and hook["pass_filenames"] is True
    assert set(hook["types_or"]) == {"yaml", "json"}
    for path, expected in HOOK_FILES.items():
        assert bool(re.search(hook["files"], path)) is expected, path
    local = load_yaml(REPO / "compiler" / "storyc" / "author" / "scaffold_data" / "pre-commit-config.yaml")["repos"][0]
    assert local["repo"] == "local"
    (lhook,) = local["hooks"]
    assert (lhook["id"], lhook["entry"], lhook["language"], lhook["files"]) == (
        "storyc-lint",
        "storyc lint",
        "system",
        hook["files"],
    )
    # the commented alternative names the repository hook
    assert (
        "#     - id: storyc-lint"
        in (REPO / "compiler" / "storyc" / "author" / "scaffold_data" / "pre-commit-config.yaml").read_text()
    )


@pytest.mark.slow
def test_repository_hook_installs_and_runs_through_pre_commit_try_repo(project, tmp_path):
    """pre-commit builds its own venv and pip-installs storyc (HEAD of this repository) with
    every dependency: ~40 s with a warm pip cache."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout: try-repo needs one")
    root, env = git_project(project, tmp_path)
    args = ["try-repo", str(REPO), "storyc-lint", "--ref", head.stdout.strip(), "--all-files"]
    ok = pre_commit(args, root, env, timeout=600)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert re.search(r"^storyc lint\.+Passed$", ok.stdout, re.M), ok.stdout[-3000:]

    break_story(root, env)
    bad = pre_commit(args, root, env, timeout=120)  # the hook environment is reused
    assert bad.returncode == 1
    assert re.search(r"^story\.yaml:\d+:\d+: error E303 .*Mirra", bad.stdout, re.M), bad.stdout[-3000:]


def test_init_stays_light_and_quotes_the_next_step(tmp_path):
    """init imports none of the render stack, and its hint is a command a shell can run."""
    target = tmp_path / "my story"
    code = (
        "import sys; from storyc.cli.app import app\n"
        "try:\n    app(['init', sys.argv[1]])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = [m for m in ('prefect', 'xai_sdk', 'av', 'PIL', 'imageio_ffmpeg') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"next: cd '{target}' && storyc lint story.yaml" in result.stdout


def test_quiet_init_prints_only_kept_files_and_the_result(tmp_path):
    (tmp_path / ".gitignore").write_text("*.log\n")
    result = storyc("init", str(tmp_path), "--quiet")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [f"next: cd {tmp_path} && storyc lint story.yaml && storyc build story.yaml"]
    assert "kept 1 existing file(s)" in result.stderr and ".gitignore" in result.stderr
    assert (tmp_path / "story.yaml").is_file()
