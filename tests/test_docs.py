"""The documentation stays true: every relative link in README.md, CONTRIBUTING.md and docs/*.md
points at a file (and heading) of this repository, nothing refers to documents outside it, the
README's story and its lint output are real, and the pages list what the code reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from storyc.lint import lint_path
from storyc.lint.format import summary_line

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])
# Pages other branches are writing; a link to one is accepted while it does not exist yet,
# and checked like any other once it does. Remove an entry when its branch has landed.
NOT_YET_MERGED = {ROOT / "docs" / "xai-faults.md"}

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)\)|!\[[^\]\n]*\]\((?P<image>[^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)


def prose(text: str) -> str:
    """The page without fenced code blocks (blanked line for line, so positions stay) and inline code."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return INLINE_CODE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> list[tuple[int, str]]:
    text = prose(page.read_text(encoding="utf-8"))
    found = []
    for match in LINK.finditer(text):
        target = match.group("target") or match.group("image")
        found.append((text.count("\n", 0, match.start()) + 1, target))
    return found


def test_the_pages_exist() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    for name in (
        "README.md",
        "CONTRIBUTING.md",
        "docs/story-format.md",
        "docs/lint-rules.md",
        "docs/prompts.md",
        "docs/builds-and-cache.md",
        "docs/reliability.md",
        "docs/prefect.md",
        "docs/backends.md",
        "docs/benchmarks.md",
        "docs/cli.md",
    ):
        assert name in names, name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for line, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not ours to check
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(ROOT)}:{line}: {target}"
        if ROOT not in (dest, *dest.parents):
            broken.append(f"{where} leaves the repository")
        elif not dest.exists():
            if dest not in NOT_YET_MERGED:
                broken.append(f"{where}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{where}: no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, "\n".join(broken)


def test_the_link_checker_catches_a_broken_link_and_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# A Title: `x`\n\n[ok](#a-title-x) [bad](#nope) [gone](missing.md)\n\n```\n[code](ignored.md)\n```\n"
    )
    assert anchors(page) == {"a-title-x"}
    assert [target for _, target in links(page)] == ["#a-title-x", "#nope", "missing.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_page_refers_to_documents_outside_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for outside in ("../shared", "/work/shared", "shared/design", "xai-facts.md", "pipeline.md", "prefect-facts.md"):
        assert outside not in text, f"{page.relative_to(ROOT)} refers to {outside}"


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block, in order."""
    return [(m.group(2), m.group(3)) for m in re.finditer(r"^(```)(\w*)\n(.*?)^```[ \t]*$", text, re.M | re.S)]


def test_the_readme_story_lints_as_its_sample_output_shows(tmp_path: Path, monkeypatch) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    story_text = next(body for lang, body in fenced_blocks(readme.split("## A story", 1)[1]) if lang == "yaml")
    sample = next(body for _, body in fenced_blocks(readme) if body.startswith("$ storyc lint paper_boat.yaml\n"))
    (tmp_path / "paper_boat.yaml").write_text(story_text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    found = lint_path(Path("paper_boat.yaml"))
    assert found and not [d for d in found if d.is_error]
    # the sample: the command, each diagnostic, the summary line
    assert sample.splitlines() == [
        "$ storyc lint paper_boat.yaml",
        *(d.format() for d in found),
        summary_line(found, files=1),
    ]


def test_the_exit_codes_are_the_same_in_the_readme_and_the_cli_page() -> None:
    def table(page: str) -> str:
        return (ROOT / page).read_text(encoding="utf-8").split("| code | meaning |", 1)[1].split("\n\n", 1)[0]

    assert table("README.md") == table("docs/cli.md")


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    names = set()
    for source in (ROOT / "compiler" / "storyc").rglob("*.py"):
        names |= set(re.findall(r"\b_?(?:STORYC|XAI)_[A-Z][A-Z0-9_]*", source.read_text(encoding="utf-8")))
    assert {"XAI_API_KEY", "STORYC_RENDER_SCALE", "STORYC_XAI_TIMEOUT"} <= names
    page = (ROOT / "docs" / "backends.md").read_text(encoding="utf-8")
    missing = sorted(name for name in names if f"`{name}" not in page)
    assert not missing, f"docs/backends.md does not mention {missing}"
