"""The template environment: lookup with overrides, Jinja's immutable sandbox bounded in
size, and every template failure turned into one positioned diagnostic (E501).

The lookup order per template is `--prompts DIR` > `<story dir>/prompts/` > the packaged
default. Templates run in Jinja's immutable sandbox with StrictUndefined, so a broken or
hostile override becomes one positioned diagnostic (E501), never a traceback and never
access to Python internals. Rendered text is collapsed (storyc.prompts.text.collapse).

jinja2 is imported lazily, when the first template is rendered: `storyc lint` imports this
module but renders only when a story overrides templates, and jinja2 would add about a
sixth to its startup.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Iterable
from functools import cache, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyc.diagnostics import StorycError, error
from storyc.prompts.text import brief, capfirst, clause, collapse, normalize_space, sentence, soften
from storyc.resources import prompts_dir

if TYPE_CHECKING:  # jinja2 itself is imported when the first template renders
    from jinja2.runtime import Context
    from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATE_SUFFIX = ".j2"
E_TEMPLATE = "E501"


class _TemplateSource:
    """Finds `<name>.j2` in the search folders, first hit wins."""

    def __init__(self, search: Iterable[Path]):
        self.search = [Path(p) for p in search]
        self._resolved: dict[str, Path | None] = {}

    def resolve(self, filename: str) -> Path | None:
        if filename not in self._resolved:
            found = None
            parts = Path(filename).parts
            if parts and ".." not in parts and not Path(filename).is_absolute():
                for folder in self.search:
                    candidate = folder / filename
                    if candidate.is_file():
                        found = candidate
                        break
            self._resolved[filename] = found
        return self._resolved[filename]


# Prompts are a few hundred characters. A template override may come with a shared
# story, so its size is bounded too: `'x' * 10**10` or nested loops must not exhaust
# the machine's memory (they did: an OOM kill), they are an E501 like any other attack.
MAX_TEMPLATE_OUTPUT = 1_000_000  # characters one render may produce
MAX_TEMPLATE_INT = 1_000_000  # largest repeat count, width or exponent result a template may use
_WIDE_FORMAT = re.compile(r"%[#0\- +]*(?:\*|\d{7,})|\{[^{}]*:[^{}]*\d{7,}")  # a width >= 10^6, or '*'


@cache
def _bounded_sandbox() -> type[ImmutableSandboxedEnvironment]:
    """ImmutableSandboxedEnvironment plus size limits on the operations that can allocate
    without bound (repetition, powers, format widths, huge call/filter arguments)."""
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def check_args(what: str, args: Iterable[Any]) -> None:
        for arg in args:
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_TEMPLATE_INT:
                raise SecurityError(f"{what}: the number {arg} is too large for a template (limit {MAX_TEMPLATE_INT})")

    def check_format(what: str, fmt: Any) -> None:
        if isinstance(fmt, str) and _WIDE_FORMAT.search(fmt):
            raise SecurityError(f"{what}: a format width that large is not allowed in a template")

    def size(value: Any) -> int | None:
        return len(value) if isinstance(value, (str, bytes, list, tuple)) else None

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**", "%"])

        def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    length = size(seq)
                    if length is not None and isinstance(n, int) and length * n > MAX_TEMPLATE_OUTPUT:
                        raise SecurityError(f"repetition to {length * n} items is too large for a template")
            elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
                if right * abs(left).bit_length() > MAX_TEMPLATE_INT.bit_length() * 64:
                    raise SecurityError("a power that large is not allowed in a template")
            elif operator == "%" and isinstance(left, str):
                check_format("%", left)
                check_args("%", right if isinstance(right, tuple) else (right,))
            return super().call_binop(context, operator, left, right)

        def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            check_args(getattr(__obj, "__name__", "call"), [*args, *kwargs.values()])
            return super().call(__context, __obj, *args, **kwargs)

        # `'...'.format` / `format_map`, checked when accessed
        def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
            wrapped = super().wrap_str_format(value)
            if wrapped is not None:
                check_format("format", value.__self__)
            return wrapped

    return BoundedSandbox


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    from jinja2.exceptions import SecurityError

    @wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        for arg in [*args[1:], *kwargs.values()]:
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_TEMPLATE_INT:
                raise SecurityError(f"filter {name}: the number {arg} is too large for a template")
        if name == "format" and args and isinstance(args[0], str) and _WIDE_FORMAT.search(args[0]):
            raise SecurityError("filter format: a format width that large is not allowed in a template")
        return func(*args, **kwargs)

    return guarded


def render_bounded(template: Any, context: dict[str, Any]) -> str:
    """template.render, streamed, stopping once the output passes MAX_TEMPLATE_OUTPUT."""
    from jinja2.exceptions import SecurityError

    parts, total = [], 0
    for chunk in template.generate(context):
        total += len(chunk)
        if total > MAX_TEMPLATE_OUTPUT:
            raise SecurityError(f"the template produced more than {MAX_TEMPLATE_OUTPUT} characters")
        parts.append(chunk)
    return "".join(parts)


class Templates:
    """A sandboxed Jinja environment over one search path, compiled templates cached."""

    def __init__(self, search: Iterable[Path]):
        import jinja2

        self.source = _TemplateSource(search)
        self._texts: dict[str, str] = {}
        self._compiled: dict[str, Any] = {}
        self._digests: dict[str, str] = {}

        def load(filename: str) -> tuple[str, str, Callable[[], bool]] | None:
            path = self.source.resolve(filename)
            if path is None:
                return None
            return self._text(filename, path), str(path), lambda: True

        # Immutable sandbox: no attribute tricks, and templates cannot mutate the
        # (cached, shared) context objects. StrictUndefined: a typo is an error.
        self.env = _bounded_sandbox()(
            loader=jinja2.FunctionLoader(load),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.filters.update(
            sentence=sentence, clause=clause, capfirst=capfirst, brief=brief, soften=soften, squash=normalize_space
        )
        self.env.filters = {name: _guard_filter(name, f) for name, f in self.env.filters.items()}

    def _text(self, filename: str, path: Path) -> str:
        if filename not in self._texts:
            try:
                self._texts[filename] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise StorycError(
                    error(str(path), 1, 1, E_TEMPLATE, f"template error: cannot read template: {exc}")
                ) from None
        return self._texts[filename]

    def path(self, name: str) -> Path:
        path = self.source.resolve(name + TEMPLATE_SUFFIX)
        if path is None:
            where = ", ".join(str(p) for p in self.source.search)
            raise StorycError(
                error(
                    str(self.source.search[-1] / (name + TEMPLATE_SUFFIX)),
                    1,
                    1,
                    E_TEMPLATE,
                    f"template error: template '{name}{TEMPLATE_SUFFIX}' not found in {where}",
                )
            )
        return path

    def render(self, name: str, context: dict[str, Any]) -> str:
        template = self._compiled.get(name)
        try:
            if template is None:
                self.path(name)  # a clear "not found" diagnostic before Jinja's
                template = self._compiled[name] = self.env.get_template(name + TEMPLATE_SUFFIX)
            return collapse(render_bounded(template, context))
        except StorycError:
            raise
        except Exception as exc:  # any template failure, Jinja's or Python's, is E501
            raise self._diagnose(name, exc, context) from None

    def digest(self, name: str) -> str:
        """sha256 of the template source, extended by the sources of the templates it
        includes/extends/imports (so editing a partial changes the digest too)."""
        if name not in self._digests:
            from jinja2 import meta

            filename = name + TEMPLATE_SUFFIX
            hasher = hashlib.sha256(self._text(filename, self.path(name)).encode("utf-8"))
            seen = {filename}
            pending = [filename]
            while pending:
                current = pending.pop()
                try:
                    ast = self.env.parse(self._texts[current])
                except Exception as exc:
                    raise self._diagnose(name, exc) from None
                for ref in sorted(r for r in meta.find_referenced_templates(ast) if r):
                    path = self.source.resolve(ref)
                    if ref in seen or path is None:
                        continue
                    seen.add(ref)
                    pending.append(ref)
                    hasher.update(b"\0" + ref.encode() + b"\0" + self._text(ref, path).encode("utf-8"))
            self._digests[name] = hasher.hexdigest()
        return self._digests[name]

    def names_used(self, name: str) -> set[tuple[str, str | None]]:
        """The context names a template (with the templates it includes) reads, as (name,
        field) pairs: `scene.action` → ("scene", "action"), `style` → ("style", None); a loop
        variable counts as its list (`c.name` in `for c in characters` → ("characters", "name"))."""
        from jinja2 import meta, nodes

        used: set[tuple[str, str | None]] = set()
        pending, seen = [name + TEMPLATE_SUFFIX], set()
        self.path(name)
        while pending:
            filename = pending.pop()
            if filename in seen or (path := self.source.resolve(filename)) is None:
                continue
            seen.add(filename)
            try:
                ast = self.env.parse(self._text(filename, path))
            except Exception as exc:
                raise self._diagnose(name, exc) from None
            pending.extend(r for r in meta.find_referenced_templates(ast) if r)
            aliases: dict[str, str] = {}
            for loop in ast.find_all(nodes.For):
                source = loop.iter
                while isinstance(source, nodes.Filter) and source.node is not None:  # characters | sort
                    source = source.node
                if isinstance(loop.target, nodes.Name) and isinstance(source, nodes.Name):
                    aliases[loop.target.name] = source.name
            for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
                assert isinstance(node, (nodes.Getattr, nodes.Getitem))  # for the type checker
                field = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
                if isinstance(node.node, nodes.Name) and isinstance(field, str):
                    used.add((aliases.get(node.node.name, node.node.name), field))
            for node in ast.find_all(nodes.Name):
                if node.ctx == "load":
                    used.add((aliases.get(node.name, node.name), None))
        return used

    def _diagnose(self, name: str, exc: BaseException, context: dict[str, Any] | None = None) -> StorycError:
        """Point at the template line that failed: a syntax error's own position, else
        the deepest traceback frame that runs inside one of our template files. A misspelt
        name (`{{ scene.actoin }}`) is pointed at on its line, with a did-you-mean from the
        names the template could have used."""
        from jinja2 import TemplateNotFound, TemplateSyntaxError, UndefinedError

        path = str(self.source.resolve(name + TEMPLATE_SUFFIX) or name + TEMPLATE_SUFFIX)
        line, column = 1, 1
        if isinstance(exc, TemplateSyntaxError):
            if exc.filename:
                path = exc.filename
            line = exc.lineno or 1
            message = exc.message or str(exc)
        else:
            if isinstance(exc, TemplateNotFound):
                message = f"template '{exc.name}' not found"
            else:
                message = str(exc) or type(exc).__name__
            files = {str(self.source.resolve(f)) for f in self._texts}
            tb = exc.__traceback__
            while tb is not None:
                filename = tb.tb_frame.f_code.co_filename
                if filename in files:
                    path, line = filename, tb.tb_lineno
                tb = tb.tb_next
            if isinstance(exc, UndefinedError):
                message, column = self._undefined(message, path, line, context or {})
        message = normalize_space(message)
        return StorycError(error(path, max(1, line), column, E_TEMPLATE, f"template error: {message}"))

    def _undefined(self, message: str, path: str, line: int, context: dict[str, Any]) -> tuple[str, int]:
        """An undefined name or field: (the message with a did-you-mean, its column on `line`)."""
        field, undefined = _NO_ATTRIBUTE.search(message), _UNDEFINED.search(message)
        name = field.group("attr") if field else undefined.group(1) if undefined else None
        if not name:
            return message, 1
        try:
            text = Path(path).read_text(encoding="utf-8").splitlines()[line - 1]
        except (OSError, UnicodeDecodeError, IndexError):
            text = ""
        column, owner = 1, None
        if field:  # scene.actoin (or scene['actoin']): point at the expression
            found = re.search(rf"(?P<owner>[A-Za-z_]\w*)\s*\.\s*{re.escape(name)}\b", text) or re.search(
                rf"\[\s*['\"]{re.escape(name)}['\"]\s*\]", text
            )
        else:  # a bare name, not a field of something else
            found = re.search(rf"(?<![\w.]){re.escape(name)}\b", text)
        if found is not None:
            owner = found.groupdict().get("owner")
            column = found.start() + 1
        names = _known_names(context, owner if field else None)
        match = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = f"; did you mean '{match[0]}'?" if match else ""
        if field:
            what = f"'{owner}' has no field '{name}'" if owner else message
        else:
            what = f"'{name}' is undefined"
        return what + hint, column


_NO_ATTRIBUTE = re.compile(r"has no attribute '(?P<attr>[^']+)'")
_UNDEFINED = re.compile(r"'([^']+)' is undefined")


def _known_names(context: dict[str, Any], owner: str | None) -> list[str]:
    """The names a template could have meant: the fields of `owner` when it is a mapping in
    the context, else every context name and every field of a mapping in it (or in a list)."""
    if owner is not None and isinstance(context.get(owner), dict):
        return sorted(context[owner])
    names = set(context)
    for value in context.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                names.update(str(k) for k in item)
    return sorted(names)


def template_search_path(story_path: Path | None, override_dir: Path | None) -> list[Path]:
    search: list[Path] = []
    if override_dir is not None:
        search.append(Path(override_dir))
    if story_path is not None:
        # Beside the story as given (like its image paths): diagnostics keep the path the user typed.
        search.append(Path(story_path).parent / "prompts")
    search.append(prompts_dir())
    # The same folder twice (a story at the repo root) is harmless but pointless.
    unique: list[Path] = []
    for folder in search:
        if folder not in unique:
            unique.append(folder)
    return unique
