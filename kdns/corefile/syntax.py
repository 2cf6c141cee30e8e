"""The Corefile's syntax, the Caddyfile dialect CoreDNS reads: server blocks, directives with
``{ }`` option blocks, ``#`` comments, quoted strings, ``{$VAR}``/``{%VAR%}``/``{env.VAR}``, and
``import`` of files, globs and snippets at any line start. What does not parse stops loading with
``CorefileError("FILE:LINE: problem")``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import NoReturn

MAX_IMPORTS = 1000  # as CoreDNS's parser: more imports than this is a runaway (or a cycle)


class CorefileError(ValueError):
    """The Corefile does not parse, or asks for something kdns does not do: every problem found, each
    ``FILE:LINE: problem``, one per line."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class Token:
    """One word of a Corefile (environment variables already substituted) and where it was written."""

    text: str
    file: str
    line: int
    quoted: bool = False

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def is_bare(self, word: str) -> bool:
        """Whether this is ``word`` unquoted: quoting turns ``{``, ``}`` and ``import`` into plain text."""
        return self.text == word and not self.quoted


@dataclass(frozen=True, slots=True)
class Directive:
    """A directive or an option line: its name, its arguments on that line and its ``{ }`` block."""

    name: Token
    args: tuple[Token, ...] = ()
    block: tuple[Directive, ...] | None = None  # None: written without a block

    @property
    def options(self) -> tuple[Directive, ...]:
        return self.block or ()


@dataclass(frozen=True, slots=True)
class ServerBlock:
    """``ZONE[:PORT] ... { directives }``."""

    keys: tuple[Token, ...]
    directives: tuple[Directive, ...]


def _fail(token: Token, message: str) -> NoReturn:
    raise CorefileError(f"{token.where}: {message}")


# --- syntax ------------------------------------------------------------------------------------------

_ENV_REFERENCE = re.compile(r"\{\$([^{}]+)\}|\{%([^{}]+)%\}|\{env\.([^{}]+)\}")


def tokenize(
    text: str, file: str = "Corefile", *, environ: Mapping[str, str] = os.environ
) -> list[tuple[Token, ...]]:
    """Split Corefile text into lines of tokens, as CoreDNS's lexer does.

    Words are separated by white space; ``#`` starts a comment to the end of the line, even inside a
    word; a word starting with ``"`` runs to the closing quote (``\\"`` is a quote, newlines are kept).
    A quoted word spanning lines belongs to the line it starts on. ``{$VAR}``, ``{%VAR%}`` and
    ``{env.VAR}`` are replaced in every word; a variable that is not set stops loading (every one of
    them is named, with its line).
    """
    unset: list[str] = []

    def substitute(word: str, line: int) -> str:
        def value(m: re.Match[str]) -> str:
            name = m[1] or m[2] or m[3]
            if name not in environ:
                unset.append(f"{file}:{line}: environment variable {name} is not set")
            return environ.get(name, "")

        return _ENV_REFERENCE.sub(value, word) if "{" in word else word

    lines: list[tuple[Token, ...]] = []
    current: list[Token] = []
    text = text.removeprefix("\ufeff")
    i, n, line = 0, len(text), 1
    while i < n:
        ch = text[i]
        if ch == "\n":
            if current:
                lines.append(tuple(current))
                current = []
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif ch == '"':
            start, word, i = line, [], i + 1
            while True:
                if i >= n:
                    raise CorefileError(f"{file}:{start}: unterminated quoted string")
                c = text[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n:  # only \" is an escape; other backslashes stay
                    c = text[i + 1]
                    word.append(c if c == '"' else "\\" + c)
                    i += 2
                else:
                    word.append(c)
                    i += 1
                line += c == "\n"
            current.append(Token(substitute("".join(word), start), file, start, quoted=True))
        else:
            start_i = i
            while i < n and not text[i].isspace() and text[i] != "#":
                i += 1
            current.append(Token(substitute(text[start_i:i], line), file, line))
    if current:
        lines.append(tuple(current))
    return _all_set(lines, unset)


def _all_set(lines: list[tuple[Token, ...]], unset: list[str]) -> list[tuple[Token, ...]]:
    if unset:
        raise CorefileError(*unset)
    return lines


@dataclass(frozen=True, slots=True)
class _Line:
    tokens: tuple[Token, ...]
    chain: tuple[str, ...]  # the files and snippets imported to reach this line, to catch cycles


@dataclass
class Parsed:
    """A Corefile's server blocks, what was read to make them (to watch for ``reload``: the files, and
    the glob patterns imported, whose matches may change), and warnings met on the way."""

    blocks: list[ServerBlock] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Parser:
    """Server blocks from lines of tokens, splicing ``import``s in as CoreDNS does, at any line start."""

    def __init__(self, environ: Mapping[str, str], import_dir: Path | None) -> None:
        self._environ = environ
        self._import_dir = import_dir
        self._pending: list[_Line] = []  # a stack: the next line is last
        self._snippets: dict[str, list[_Line]] = {}
        self._imports = 0
        self.parsed = Parsed()

    def parse(self, path: Path) -> Parsed:
        file = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CorefileError(f"{file}: cannot read the Corefile: {_reason(exc)}") from None
        self.parsed.files.append(path)
        lines = tokenize(text, file, environ=self._environ)
        self._pending = [_Line(tokens, (os.path.abspath(file),)) for tokens in reversed(lines)]
        while (line := self._next()) is not None:
            block = self._server_block(line)
            if block is not None:
                self.parsed.blocks.append(block)
        return self.parsed

    def _next(self) -> _Line | None:
        """The next line, with imports expanded."""
        while self._pending:
            line = self._pending.pop()
            first = line.tokens[0]
            if first.is_bare("import"):
                self._import(line)
                continue
            return line
        return None

    def _import(self, line: _Line) -> None:
        first = line.tokens[0]
        if len(line.tokens) != 2:
            _fail(first, "import takes one argument: a file, a glob pattern or a snippet name")
        pattern = line.tokens[1].text
        if not pattern:
            _fail(first, "import needs a non-empty file name")
        self._imports += 1
        if self._imports > MAX_IMPORTS:
            _fail(first, f"more than {MAX_IMPORTS} imports: is there an import cycle?")
        if pattern in self._snippets:
            lines = self._snippets[pattern]
            origin = f"snippet {pattern}"
            if origin in line.chain:
                _fail(first, f"import cycle: snippet {pattern} imports itself")
            self._pending.extend(_Line(x.tokens, (*line.chain, origin)) for x in reversed(lines))
            return
        full = pattern if os.path.isabs(pattern) else os.path.join(os.path.dirname(first.file), pattern)
        if self._import_dir is not None and not os.path.isdir(os.path.dirname(full)):
            full = os.path.join(self._import_dir, os.path.basename(full))  # kdns check --import-dir
        if re.search(r"[*?\[]", full):
            matches = sorted(glob(full))  # may be none: k3s and AKS import optional ConfigMaps so
            self.parsed.patterns.append(full)
            if not matches:
                self.parsed.warnings.append(f"{first.where}: import: no files match {full}")
        elif os.path.exists(full):
            matches = [full]
        else:
            _fail(first, f"import: file {pattern} not found")
        imported: list[_Line] = []
        for match in matches:
            if os.path.abspath(match) in line.chain:
                _fail(first, f"import cycle: {match} imports itself")
            try:
                text = Path(match).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                _fail(first, f"cannot import {match}: {_reason(exc)}")
            chain = (*line.chain, os.path.abspath(match))
            self.parsed.files.append(Path(match))
            lines = tokenize(text, match, environ=self._environ)
            imported.extend(_Line(tokens, chain) for tokens in lines)
        self._pending.extend(reversed(imported))

    def _server_block(self, line: _Line) -> ServerBlock | None:
        keys = list(line.tokens)
        opener = keys.pop() if keys[-1].is_bare("{") else None
        while opener is None and keys and keys[-1].text.endswith(","):  # the list goes on
            more = self._next()
            if more is None:
                _fail(keys[-1], "the server address list ends with ','")
            keys += more.tokens
            opener = keys.pop() if keys[-1].is_bare("{") else None
        if opener is None:
            follow = self._next()
            if follow is not None and len(follow.tokens) == 1 and follow.tokens[0].is_bare("{"):
                opener = follow.tokens[0]
            elif follow is not None:
                self._pending.append(follow)
        if not keys:
            _fail(line.tokens[0], "'{' without a server address before it")
        for key in keys:
            if key.is_bare("}") or key.is_bare("{"):
                _fail(key, f"unexpected '{key.text}'")
            if key.text.endswith("{") and not key.quoted:
                _fail(key, f"put a space before '{{' in {key.text!r}")
        keys = [Token(k.text.removesuffix(","), k.file, k.line, k.quoted) for k in keys]
        name = keys[0].text
        if len(keys) == 1 and name.startswith("(") and name.endswith(")"):
            self._snippet(name[1:-1], keys[0], opener)
            return None
        return ServerBlock(tuple(keys), self._block(opener))

    def _snippet(self, name: str, key: Token, opener: Token | None) -> None:
        if opener is None:
            _fail(key, f"snippet {key.text} needs a '{{' block")
        if name in self._snippets:
            _fail(key, f"snippet {key.text} is defined twice")
        body: list[_Line] = []
        depth = 1
        while True:
            if not self._pending:
                _fail(opener, "'{' is not closed")
            line = self._pending.pop()  # raw: imports inside expand where the snippet is used
            if line.tokens[0].is_bare("}"):
                depth -= 1
                if depth == 0:
                    _only_brace(line.tokens)
                    self._snippets[name] = body
                    return
            if line.tokens[-1].is_bare("{"):
                depth += 1
            body.append(line)

    def _block(self, opener: Token | None) -> tuple[Directive, ...]:
        """Lines up to the ``}`` that closes ``opener`` (to the end of input without one)."""
        items: list[Directive] = []
        while True:
            line = self._next()
            if line is None:
                if opener is not None:
                    _fail(opener, "'{' is not closed")
                return tuple(items)
            tokens = line.tokens
            if tokens[0].is_bare("}"):
                if opener is None:
                    _fail(tokens[0], "unexpected '}': no '{' is open")
                _only_brace(tokens)
                return tuple(items)
            if tokens[0].is_bare("{"):
                _fail(tokens[0], "unexpected '{': a block opens at the end of its directive's line")
            sub = tokens[-1] if tokens[-1].is_bare("{") else None
            words = tokens[:-1] if sub is not None else tokens
            for word in words[1:]:
                if word.is_bare("{") or word.is_bare("}"):
                    _fail(word, f"unexpected '{word.text}': '{{' ends a line and '}}' starts one")
            items.append(Directive(words[0], words[1:], self._block(sub) if sub is not None else None))


def _only_brace(tokens: tuple[Token, ...]) -> None:
    if len(tokens) > 1:
        _fail(tokens[1], f"unexpected {tokens[1].text!r} after '}}'")


def _reason(exc: Exception) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def parse(path: Path, *, environ: Mapping[str, str] = os.environ, import_dir: Path | None = None) -> Parsed:
    """The server blocks of a Corefile, with what was read to make them. ``import_dir`` stands in for
    an imported file's directory that does not exist here (``kdns check`` on a ConfigMap's files)."""
    return _Parser(environ, import_dir).parse(Path(path))
