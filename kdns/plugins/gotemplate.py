"""A small interpreter for the part of Go's ``text/template`` that CoreDNS's template records use.

``GoTemplate.parse(text, schema)`` checks a template against the fields its data will have and raises
``ValueError`` naming whatever it does not take; ``execute(data)`` renders it, raising ``ExecError``
where Go's would fail at run time (an index out of range, a number ``parseInt`` cannot read).

Taken, with Go's meaning:

- text and actions ``{{ ... }}``, whitespace trimming ``{{-`` ``-}}``, comments ``{{/* ... */}}``;
- the dot and field chains: ``.Name``, ``.Group.a`` (a map key; a missing one prints ``<no value>``),
  ``.Question.Qtype``; a field the schema does not have is refused at parse time;
- literals: strings (``"..."`` with Go's escapes, raw ```...```), integers, ``true``, ``false``;
- pipelines with ``|`` (the value goes last), parenthesised pipelines as arguments;
- ``{{ if }} {{ else if }} {{ else }} {{ end }}``;
- functions: CoreDNS's ``parseInt`` (Go's ``strconv.ParseUint(s, base, bits)``) and Go's ``index``,
  ``len``, ``print``, ``printf`` (verbs ``%s %v %d %x %X %o %q %%`` with flags, width and precision),
  ``eq``, ``ne``, ``lt``, ``le``, ``gt``, ``ge``, ``and``, ``or``, ``not``.

Refused at parse time: variables (``$x``), ``range``, ``with``, ``define``, ``template``, ``block``,
``break``, ``continue``, ``nil``, other functions (``html``, ``js``, ``urlquery``, ``call``, ``slice``,
``println``), methods with arguments, and fields past a parenthesised pipeline.

Values are Python's: ``str``, ``int``, ``bool``, a tuple for a Go slice, a dict for a Go map, a
``GoStruct`` for a struct that prints through its ``String`` method.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

MAX_OUTPUT = 65535  # a rendered record longer than any DNS message can carry is an error


class ExecError(Exception):
    """The template failed while rendering, as Go's ``Execute`` would."""


class _NoValue:
    """A missing map key read as a field: Go prints ``<no value>``."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()

# The schema says which fields data has: a field maps to SCALAR, SLICE, MAP or a nested schema (a struct).
SCALAR = "scalar"
SLICE = "slice"
MAP = "map"
Schema = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class GoStruct:
    """A Go struct value: its fields, and how it prints (its ``String`` method)."""

    fields: Mapping[str, object]
    text: str

    def __str__(self) -> str:
        return self.text


# --- lexing ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # text, open, close, field, dot, ident, string, number, lparen, rparen, pipe, comment
    value: object = None


_TRIM = " \t\r\n"
_KEYWORDS_REFUSED = {"range", "with", "define", "template", "block", "break", "continue"}
_NUMBER = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*)(?![\w.])")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELD = re.compile(r"(\.[A-Za-z_][A-Za-z0-9_]*)+")
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_GO_STRING_ESCAPE = re.compile(r'\\(?:[abfnrtv\\"]|[0-7]{3}|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})')


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        start = text.find("{{", i)
        if start < 0:
            tokens.append(_Token("text", text[i:]))
            break
        literal = text[i:start]
        i = start + 2
        if text.startswith("-", i) and i + 1 < len(text) and text[i + 1] in _TRIM:
            literal = literal.rstrip(_TRIM)
            i += 1
        if literal:
            tokens.append(_Token("text", literal))
        i, trim_right = _lex_action(text, i, tokens)
        if trim_right:
            while i < len(text) and text[i] in _TRIM:
                i += 1
    return tokens


def _close_at(text: str, i: int) -> int | None:
    """Where the text after the action starts, if it closes at ``i``; negative for a trimming close."""
    if i >= len(text):
        return None
    if text.startswith("}}", i):
        return i + 2
    if text[i] in _TRIM:
        j = i
        while j < len(text) and text[j] in _TRIM:
            j += 1
        if text.startswith("-}}", j):
            return -(j + 3)
    return None


def _lex_action(text: str, i: int, tokens: list[_Token]) -> tuple[int, bool]:
    """Tokens of the action starting at ``i``; where the text after it starts, and whether it trims."""
    while i < len(text) and text[i] in _TRIM and _close_at(text, i) is None:
        i += 1
    if text.startswith("/*", i):
        end = text.find("*/", i + 2)
        closed = _close_at(text, end + 2) if end >= 0 else None
        if closed is None:
            raise ValueError("unclosed comment")
        return abs(closed), closed < 0
    tokens.append(_Token("open"))
    while True:
        if i >= len(text):
            raise ValueError("unclosed action: {{ without }}")
        closed = _close_at(text, i)
        if closed is not None:
            tokens.append(_Token("close"))
            return abs(closed), closed < 0
        if text[i] in _TRIM:
            i += 1
            continue
        token, i = _lex_token(text, i)
        tokens.append(token)


def _lex_token(text: str, i: int) -> tuple[_Token, int]:
    c = text[i]
    if m := _FIELD.match(text, i):
        if m.end() < len(text) and text[m.end()] == "." and text[m.end() + 1 : m.end() + 2].isdigit():
            raise ValueError(
                f"{m.group(0)}.{text[m.end() + 1]}...: a field is a name, not a number "
                f'(use index {m.group(0)} "N" or index .Match N)'
            )
        return _Token("field", tuple(m.group(0)[1:].split("."))), m.end()
    if c == ".":
        return _Token("dot"), i + 1
    if m := _NUMBER.match(text, i):
        digits = m.group(0)
        if "__" in digits or digits.endswith("_"):
            raise ValueError(f"bad number syntax: {digits!r}")
        return _Token("number", _number_value(digits)), m.end()
    if c == '"':
        m = _STRING.match(text, i)
        if m is None:
            raise ValueError("unterminated quoted string")
        return _Token("string", _go_string(m.group(0))), m.end()
    if c == "`":
        end = text.find("`", i + 1)
        if end < 0:
            raise ValueError("unterminated raw quoted string")
        return _Token("string", text[i + 1 : end]), end + 1
    if m := _IDENT.match(text, i):
        return _Token("ident", m.group(0)), m.end()
    if c in "()|":
        return _Token({"(": "lparen", ")": "rparen", "|": "pipe"}[c]), i + 1
    if c == "$":
        raise ValueError("template variables ($...) are not supported")
    raise ValueError(f"unexpected {c!r} in action")


def _go_string(quoted: str) -> str:
    body = quoted[1:-1]
    for escape in re.finditer(r"\\.", body):
        if not _GO_STRING_ESCAPE.match(body, escape.start()):
            raise ValueError(f"unknown escape sequence in {quoted}")
    value = ast.literal_eval(quoted)
    assert isinstance(value, str)
    return value


def _number_value(digits: str) -> int:
    text = digits.replace("_", "")
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    if len(text) > 1 and text[0] == "0" and text[1].isdigit():
        return sign * int(text, 8)  # Go's leading-zero octal
    return sign * int(text, 0)


# --- parsing ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Operand:
    kind: str  # field, literal, func, pipe
    value: object


@dataclass(frozen=True, slots=True)
class _Pipe:
    commands: tuple[tuple[_Operand, ...], ...]


@dataclass(frozen=True, slots=True)
class _If:
    condition: _Pipe
    then: tuple[object, ...]
    otherwise: tuple[object, ...]


@dataclass
class _Parser:
    tokens: list[_Token]
    schema: Schema
    refused: Mapping[str, str]
    i: int = 0
    fields: set[str] = field(default_factory=set)

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str | None = None) -> _Token:
        token = self.peek()
        if token is None or (kind is not None and token.kind != kind):
            raise ValueError(f"unexpected {'end of template' if token is None else _shown(token)}")
        self.i += 1
        return token

    def nodes(self, *, until_end: bool) -> tuple[tuple[object, ...], str]:
        """Nodes up to the end of the template, or up to an ``{{ else }}`` or ``{{ end }}``."""
        out: list[object] = []
        while (token := self.peek()) is not None:
            if token.kind == "text":
                out.append(self.take().value)
                continue
            self.take("open")
            word = self.peek()
            if word is not None and word.kind == "ident" and word.value in ("end", "else"):
                if not until_end:
                    raise ValueError(f"unexpected {{{{{word.value}}}}}")
                self.take()
                if word.value == "end":
                    self.take("close")
                return tuple(out), str(word.value)
            if word is not None and word.kind == "ident" and word.value == "if":
                self.take()
                out.append(self.if_())
                continue
            out.append(self.pipe())
            self.take("close")
        if until_end:
            raise ValueError("unexpected end of template: {{if}} without {{end}}")
        return tuple(out), ""

    def if_(self) -> _If:
        condition = self.pipe()
        self.take("close")
        then, ended_by = self.nodes(until_end=True)
        otherwise: tuple[object, ...] = ()
        if ended_by == "else":
            word = self.peek()
            if word is not None and word.kind == "ident" and word.value == "if":
                self.take()
                otherwise = (self.if_(),)  # {{else if}} shares the {{end}} of its {{if}}
            else:
                self.take("close")
                otherwise, ended_by = self.nodes(until_end=True)
                if ended_by != "end":
                    raise ValueError("{{else}} after {{else}}")
        return _If(condition, then, otherwise)

    def pipe(self) -> _Pipe:
        commands = [self.command(piped=False)]
        while (token := self.peek()) is not None and token.kind == "pipe":
            self.take()
            commands.append(self.command(piped=True))
        for command in commands[1:]:
            if command[0].kind != "func":
                raise ValueError(f"cannot pipe into {_operand_text(command[0])}: it is not a function")
        return _Pipe(tuple(commands))

    def command(self, *, piped: bool) -> tuple[_Operand, ...]:
        operands: list[_Operand] = []
        while (token := self.peek()) is not None and token.kind not in ("close", "pipe", "rparen"):
            operands.append(self.operand())
        if not operands:
            raise ValueError("missing value for command")
        head = operands[0]
        if head.kind == "func":
            name = str(head.value)
            low, high = _FUNCTIONS[name][1:]
            given = len(operands) - 1 + piped  # a pipe supplies the last argument
            if given < low or (high is not None and given > high):
                raise ValueError(f"wrong number of arguments for {name}: {given}")
        elif len(operands) > 1:
            raise ValueError(f"{_operand_text(head)} is not a function and takes no arguments")
        return tuple(operands)

    def operand(self) -> _Operand:
        token = self.take()
        if token.kind == "field":
            return _Operand("field", self.check_field(token.value))  # type: ignore[arg-type]
        if token.kind == "dot":
            raise ValueError("the dot alone is not supported: name a field (.Name)")
        if token.kind in ("string", "number"):
            return _Operand("literal", token.value)
        if token.kind == "lparen":
            inner = self.pipe()
            self.take("rparen")
            after = self.peek()
            if after is not None and after.kind == "field":
                raise ValueError("fields of a parenthesised value are not supported")
            return _Operand("pipe", inner)
        if token.kind == "ident":
            name = str(token.value)
            if name in ("true", "false"):
                return _Operand("literal", name == "true")
            if name in _KEYWORDS_REFUSED:
                raise ValueError(f"{{{{{name}}}}} is not supported")
            if name in ("if", "else", "end"):
                raise ValueError(f"unexpected {name!r} inside an action")
            if name == "nil":
                raise ValueError("nil is not a command")
            if name not in _FUNCTIONS:
                raise ValueError(f'function "{name}" not defined (or not supported by kdns)')
            return _Operand("func", name)
        raise ValueError(f"unexpected {_shown(token)}")

    def check_field(self, chain: tuple[str, ...]) -> tuple[str, ...]:
        root = chain[0]
        if root in self.refused:
            raise ValueError(f".{root}: {self.refused[root]}")
        schema: object = self.schema
        for depth, name in enumerate(chain):
            if isinstance(schema, Mapping):
                if name not in schema:
                    where = "the template's data" if depth == 0 else "." + ".".join(chain[:depth])
                    known = ", ".join("." + k for k in schema)
                    raise ValueError(f"can't evaluate field {name} in {where} (it has {known})")
                schema = schema[name]
            elif schema == MAP:
                schema = SCALAR  # a map key: any name
            else:
                raise ValueError(f"can't evaluate field {name} of .{'.'.join(chain[:depth])}")
        self.fields.add(".".join(chain))
        return chain


def _shown(token: _Token) -> str:
    return {"close": "}}", "open": "{{", "lparen": "(", "rparen": ")", "pipe": "|"}.get(
        token.kind, repr(token.value)
    )


def _operand_text(operand: _Operand) -> str:
    if operand.kind == "field":
        return "." + ".".join(operand.value)  # type: ignore[arg-type]
    return "(...)" if operand.kind == "pipe" else repr(operand.value)


# --- running ------------------------------------------------------------------------------------------


class GoTemplate:
    """A parsed template: ``execute(data)`` renders it; ``fields`` holds the field chains it reads
    (``Name``, ``Group.a``, ``Question.Qtype``), so a caller knows what its output depends on."""

    __slots__ = ("fields", "nodes", "text")

    def __init__(self, text: str, nodes: tuple[object, ...], fields: frozenset[str]) -> None:
        self.text = text
        self.nodes = nodes
        self.fields = fields

    @classmethod
    def parse(cls, text: str, schema: Schema, refused: Mapping[str, str] | None = None) -> GoTemplate:
        """Parse ``text`` for data shaped as ``schema``; ``refused`` maps fields to why they are refused."""
        try:
            parser = _Parser(_lex(text), schema, refused or {})
            nodes, _ = parser.nodes(until_end=False)
        except ValueError as exc:
            raise ValueError(f"template {text!r}: {exc}") from None
        return cls(text, nodes, frozenset(parser.fields))

    def execute(self, data: Mapping[str, object]) -> str:
        out: list[str] = []
        self._run(self.nodes, data, out)
        return "".join(out)

    def _run(self, nodes: tuple[object, ...], data: Mapping[str, object], out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, str):
                out.append(node)
            elif isinstance(node, _If):
                taken = _truth(_eval_pipe(node.condition, data), "if")
                self._run(node.then if taken else node.otherwise, data, out)
            else:
                assert isinstance(node, _Pipe)
                out.append(_text(_eval_pipe(node, data)))
            if sum(map(len, out)) > MAX_OUTPUT:
                raise ExecError(f"output longer than {MAX_OUTPUT} characters")


def _eval_pipe(pipe: _Pipe, data: Mapping[str, object]) -> object:
    value: object = _MISSING
    for command in pipe.commands:
        args = [_eval_operand(o, data) for o in command[1:]]
        if value is not _MISSING:
            args.append(value)
        head = command[0]
        if head.kind == "func":
            function, low, high = _FUNCTIONS[str(head.value)]
            if len(args) < low or (high is not None and len(args) > high):
                raise ExecError(f"wrong number of arguments for {head.value}: {len(args)}")
            value = function(*args)
        else:
            value = _eval_operand(head, data)
    return value


_MISSING = object()


def _eval_operand(operand: _Operand, data: Mapping[str, object]) -> object:
    if operand.kind == "literal":
        return operand.value
    if operand.kind == "pipe":
        return _eval_pipe(operand.value, data)  # type: ignore[arg-type]
    if operand.kind == "field":
        value: object = data
        for name in operand.value:  # type: ignore[union-attr]
            if isinstance(value, GoStruct):
                value = value.fields[name]
            elif isinstance(value, Mapping):
                value = value.get(name, NO_VALUE)
            else:
                raise ExecError(f"can't evaluate field {name}")
        return value
    raise ExecError(f"{operand.value} is a function: call it with its arguments")


def _text(value: object) -> str:
    """Go's ``fmt.Sprint`` of one value, as an action prints it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + " ".join(_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_text(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _truth(value: object, what: str) -> bool:
    if value is NO_VALUE or value is None:
        raise ExecError(f"{what} can't use {_text(value)}")
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str | tuple | list | Mapping):
        return len(value) > 0
    return True


# --- functions ----------------------------------------------------------------------------------------


def _index(item: object, *indices: object) -> object:
    for index in indices:
        if isinstance(item, tuple | list):
            if isinstance(index, bool) or not isinstance(index, int):
                raise ExecError(f"cannot index slice with {_text(index)}")
            if not 0 <= index < len(item):
                raise ExecError(f"error calling index: index out of range: {index}")
            item = item[index]
        elif isinstance(item, Mapping):
            if not isinstance(index, str):
                raise ExecError(f"value has type {type(index).__name__}; should be string")
            item = item.get(index, "")  # Go's zero value of the map's element type
        else:
            raise ExecError(f"can't index item {_text(item)}")
    return item


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def parse_uint(text: object, base: object, bits: object) -> int:
    """Go's ``strconv.ParseUint(text, base, bits)``: CoreDNS registers it as ``parseInt``."""
    if not isinstance(text, str):
        raise ExecError(f"parseInt: {_text(text)} is not a string")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (base, bits)):
        raise ExecError("parseInt: base and bit size must be integers")
    failure = ExecError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    digits, underscores = text, False
    if base == 0:
        base, underscores = 10, True
        if len(digits) > 1 and digits[0] == "0":
            prefix = digits[1].lower()
            base, skip = {"x": (16, 2), "b": (2, 2), "o": (8, 2)}.get(prefix, (8, 1))
            digits = digits[skip:]
    elif not 2 <= base <= 36:
        raise ExecError(f'strconv.ParseUint: parsing "{text}": invalid base {base}')
    bits = bits or 64
    if not 1 <= bits <= 64:
        raise ExecError(f'strconv.ParseUint: parsing "{text}": invalid bit size {bits}')
    if underscores:
        if (digits.startswith("_") and base == 10) or "__" in digits or digits.endswith("_"):
            raise failure
        digits = digits.replace("_", "")
    if not digits:
        raise failure
    value = 0
    for c in digits.lower():
        digit = _DIGITS.find(c)
        if digit < 0 or digit >= base:
            raise failure
        value = value * base + digit
    if value >= 1 << bits:
        raise ExecError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def _len(value: object) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, tuple | list | Mapping):
        return len(value)
    raise ExecError(f"len of {_text(value)}")


def _print(*values: object) -> str:
    out = []
    for i, value in enumerate(values):
        if i and not isinstance(value, str) and not isinstance(values[i - 1], str):
            out.append(" ")
        out.append(_text(value))
    return "".join(out)


_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def _printf(form: object, *args: object) -> str:
    if not isinstance(form, str):
        raise ExecError("printf: the format is not a string")
    remaining = list(args)

    def one(m: re.Match[str]) -> str:
        flags, width, precision, verb = m.groups()
        if verb == "%":
            return "%"
        if not remaining:
            return f"%!{verb}(MISSING)"
        value = remaining.pop(0)
        size, left = int(width or 0), "-" in flags
        if verb in "sv" or (verb == "q" and isinstance(value, str)):
            text = _quoted(value) if verb == "q" else _text(value)
            if precision is not None and verb != "q":
                text = text[: int(precision)]
            return text.ljust(size) if left else text.rjust(size)
        if verb in "dxXo" and isinstance(value, int) and not isinstance(value, bool):
            digits = format(abs(value), verb)
            if "#" in flags and verb != "d":
                digits = {"x": "0x", "X": "0X", "o": "0"}[verb] + digits
            sign = "-" if value < 0 else "+" if "+" in flags else " " if " " in flags else ""
            if left:
                return (sign + digits).ljust(size)
            if "0" in flags:
                return sign + digits.rjust(size - len(sign), "0")
            return (sign + digits).rjust(size)
        return f"%!{verb}({type(value).__name__}={_text(value)})"

    result = _VERB.sub(one, form)
    if remaining:
        result += "%!(EXTRA " + ", ".join(_text(v) for v in remaining) + ")"
    return result


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comparable(a: object, b: object) -> None:
    same_kind = any(isinstance(a, k) and isinstance(b, k) for k in (bool, int, str))
    if not same_kind or isinstance(a, bool) != isinstance(b, bool):
        raise ExecError(f"incompatible types for comparison: {_text(a)} and {_text(b)}")


def _eq(a: object, *others: object) -> bool:
    if not others:
        raise ExecError("missing argument for comparison")
    for b in others:
        _comparable(a, b)
        if a == b:
            return True
    return False


def _ordered(op: Callable[[object, object], bool]) -> Callable[[object, object], bool]:
    def compare(a: object, b: object) -> bool:
        _comparable(a, b)
        if isinstance(a, bool):
            raise ExecError("invalid type for comparison")
        return op(a, b)

    return compare


def _and(*values: object) -> object:
    for value in values[:-1]:
        if not _truth(value, "and"):
            return value
    return values[-1]


def _or(*values: object) -> object:
    for value in values[:-1]:
        if _truth(value, "or"):
            return value
    return values[-1]


_FUNCTIONS: dict[str, tuple[Callable[..., object], int, int | None]] = {
    "parseInt": (parse_uint, 3, 3),
    "index": (_index, 1, None),
    "len": (_len, 1, 1),
    "print": (_print, 0, None),
    "printf": (_printf, 1, None),
    "eq": (_eq, 1, None),
    "ne": (lambda a, b: not _eq(a, b), 2, 2),
    "lt": (_ordered(lambda a, b: a < b), 2, 2),  # type: ignore[operator]
    "le": (_ordered(lambda a, b: a <= b), 2, 2),  # type: ignore[operator]
    "gt": (_ordered(lambda a, b: a > b), 2, 2),  # type: ignore[operator]
    "ge": (_ordered(lambda a, b: a >= b), 2, 2),  # type: ignore[operator]
    "and": (_and, 1, None),
    "or": (_or, 1, None),
    "not": (lambda value: not _truth(value, "not"), 1, 1),
}
