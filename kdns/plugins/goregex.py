"""Go regular expressions (RE2 syntax, as CoreDNS's ``match`` compiles them) as Python ``re`` patterns.

``compile_go(text)`` returns the compiled pattern or raises ``ValueError`` naming the construct it
cannot take. Both engines report the leftmost-first match (Perl's choice), so where the syntax is
shared the match and its groups are the same; what differs, and what is done about it:

- translated: ``(?<name>re)`` (Go's second spelling of ``(?P<name>re)``); ``\\z`` (end of text, Python's
  ``\\Z``); ``\\Q...\\E`` (literal text); ``[[:alpha:]]`` and the other POSIX classes, ``[[:^alpha:]]``;
  ``\\x{10FFFF}``; ``x{,n}``, which Go reads as literal text and Python as a repeat;
- kept Go's meaning with flags: ``\\d \\w \\s \\b`` are ASCII in Go (``re.ASCII``);
- refused, since Go refuses them (CoreDNS would not start): lookaround ``(?=`` ``(?!`` ``(?<=``
  ``(?<!``, backreferences ``\\1`` ``(?P=name)``, atomic groups ``(?>``, possessive ``*+ ++ ?+``,
  conditionals, comments ``(?#``, Python's ``\\Z`` ``\\u`` ``\\N{}``, the flags ``a L u x``, repeats
  over 1000;
- refused, since Python cannot do them: Unicode classes ``\\pL`` ``\\p{Greek}``, ``\\C``, ``(?U)``
  (ungreedy), flags set in the middle of a pattern (``a(?i)b``: write ``a(?i:b)``), octal escapes.

A qname is matched in presentation form (no newline in it), so ``$``, which Python also lets match
before a final newline, means the same in both. Python's engine backtracks where Go's runs in linear
time: a pattern with nested repeats (``(a+)+$``) can be slow on a hostile name.
"""

from __future__ import annotations

import re
import warnings

MAX_REPEAT = 1000  # Go's limit on a repeat count
_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_GO_FLAGS = set("imsU")
_SIMPLE_ESCAPES = set("afnrtvdDsSwWbBA")  # the same in both, with re.ASCII
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_BAD_REPEAT = re.compile(r"\{,\d*\}")
_HEX_BRACED = re.compile(r"\{([0-9A-Fa-f]{1,8})\}")
_GROUP_NAME = re.compile(r"[A-Za-z0-9_]+>")
_POSIX_CLASS = re.compile(r"\[:(\^?)([a-z]+):\]")
_NEGATED_POSIX_CLASS = re.compile(r"\[\[:\^([a-z]+):\]\]")


def compile_go(text: str) -> re.Pattern[str]:
    """Compile a Go regular expression with Go's meaning; ``ValueError`` names what cannot be."""
    translated = _Translator(text).run()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Python warns of set syntax it may take up one day
            return re.compile(translated, re.ASCII)
    except re.error as exc:
        raise ValueError(f"regex {text!r} does not compile: {exc}") from None


class _Translator:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.out: list[str] = []
        self.atom_open = False  # something a quantifier may follow has just been written

    def fail(self, what: str) -> ValueError:
        return ValueError(f"regex {self.text!r}: {what}")

    def run(self) -> str:
        text = self.text
        while self.i < len(text):
            c = text[self.i]
            if c == "\\":
                self.escape(in_class=False)
            elif c == "[":
                self.char_class()
            elif c == "(":
                self.group()
            elif c in "*+?":
                self.quantifier(c, c)
            elif c == "{":
                self.brace()
            else:
                self.out.append(c)
                self.i += 1
                self.atom_open = c not in "|^$"
        return "".join(self.out)

    # -- atoms ---------------------------------------------------------------------------------------
    def escape(self, *, in_class: bool) -> None:
        text, i = self.text, self.i
        if i + 1 >= len(text):
            raise self.fail("trailing backslash")
        c = text[i + 1]
        self.i += 2
        self.atom_open = True
        if c == "Q":
            end = text.find("\\E", self.i)
            literal = text[self.i :] if end < 0 else text[self.i : end]
            self.i = len(text) if end < 0 else end + 2
            self.out.append("".join("\\" + ch if not ch.isalnum() else ch for ch in literal))
        elif c == "z" and not in_class:
            self.out.append("\\Z")
        elif c == "x":
            braced = _HEX_BRACED.match(text, self.i)
            if braced:
                self.i = braced.end()
                self.out.append(f"\\U{int(braced.group(1), 16):08x}")
            elif re.fullmatch(r"[0-9A-Fa-f]{2}", text[self.i : self.i + 2]):
                self.out.append("\\x" + text[self.i : self.i + 2])
                self.i += 2
            else:
                raise self.fail("\\x takes two hex digits or {HEX}")
        elif c in "pP":
            raise self.fail(f"Unicode classes (\\{c}) are not supported")
        elif c == "C":
            raise self.fail("\\C (any byte) is not supported")
        elif c.isdigit():
            raise self.fail(f"\\{c}: backreferences and octal escapes are not supported (write \\xHH)")
        elif (c in _SIMPLE_ESCAPES and not (in_class and c in "bBA")) or (c.isascii() and not c.isalnum()):
            self.out.append("\\" + c)
        else:
            raise self.fail(f"invalid escape \\{c}")

    def char_class(self) -> None:
        text = self.text
        negated_posix = _NEGATED_POSIX_CLASS.match(text, self.i)
        if negated_posix:  # [[:^alpha:]], the whole class
            self.out.append(f"[^{self.posix(negated_posix.group(1))}]")
            self.i = negated_posix.end()
            self.atom_open = True
            return
        self.i += 1
        parts = ["["]
        if text.startswith("^", self.i):
            parts.append("^")
            self.i += 1
        first = True
        while True:
            if self.i >= len(text):
                raise self.fail("missing closing ]")
            c = text[self.i]
            posix = _POSIX_CLASS.match(text, self.i)
            if c == "]" and not first:
                self.i += 1
                break
            if posix:
                if posix.group(1):
                    raise self.fail(f"[:^{posix.group(2)}:] inside a larger class is not supported")
                parts.append(self.posix(posix.group(2)))
                self.i = posix.end()
            elif c == "\\":
                saved, self.out = self.out, []
                self.escape(in_class=True)
                parts.append("".join(self.out))
                self.out = saved
            else:
                parts.append("\\" + c if c in "[&~|" else c)  # literal in Go; Python reserves them
                self.i += 1
            first = False
        self.out.append("".join(parts) + "]")
        self.atom_open = True

    def posix(self, name: str) -> str:
        if name not in _POSIX_CLASSES:
            raise self.fail(f"unknown character class [:{name}:]")
        return _POSIX_CLASSES[name]

    def group(self) -> None:
        text = self.text
        rest = text[self.i + 1 :]
        self.atom_open = False
        if not rest.startswith("?"):
            self.out.append("(")
            self.i += 1
            return
        for prefix, what in (
            ("?=", "lookahead"),
            ("?!", "lookahead"),
            ("?<=", "lookbehind"),
            ("?<!", "lookbehind"),
            ("?>", "atomic groups"),
            ("?#", "comments"),
            ("?(", "conditionals"),
            ("?P=", "backreferences"),
            ("?P>", "recursion"),
        ):
            if rest.startswith(prefix):
                raise self.fail(f"({prefix}...): Go has no {what}")
        for prefix in ("?P<", "?<"):
            if rest.startswith(prefix):
                name = _GROUP_NAME.match(rest, len(prefix))
                if not name:
                    raise self.fail("invalid or missing group name")
                self.out.append("(?P<" + name.group(0))
                self.i += 1 + name.end()
                return
        flags = re.match(r"\?([a-zA-Z]*)(-[a-zA-Z]*)?([:)])", rest)
        if not flags:
            raise self.fail(f"invalid group syntax at {text[self.i : self.i + 4]!r}")
        letters = set(flags.group(1) + (flags.group(2) or "")[1:])
        if letters - _GO_FLAGS:
            unknown = "".join(sorted(letters - _GO_FLAGS))
            raise self.fail(f"unknown flag(s) {unknown} in ({flags.group(0)}; Go knows i, m, s, U")
        if "U" in letters:
            raise self.fail("the U (ungreedy) flag is not supported")
        positive = flags.group(1)
        if flags.group(3) == ":":
            self.out.append("(" + flags.group(0))
        elif self.out:
            raise self.fail(f"flags ({flags.group(0)} in the middle of a pattern; write (?flags:...)")
        elif positive:
            self.out.append(f"(?{positive})")  # Python's global flags cannot clear one: none is set yet
        self.i += 1 + flags.end()

    # -- repeats -------------------------------------------------------------------------------------
    def quantifier(self, written: str, python: str) -> None:
        if not self.atom_open:
            raise self.fail(f"missing argument to repetition operator {written!r}")
        self.i += len(written)
        lazy = self.text.startswith("?", self.i)
        if lazy:
            self.i += 1
        if self.i < len(self.text) and (self.text[self.i] in "*+?" or _REPEAT.match(self.text, self.i)):
            raise self.fail(f"invalid nested repetition operator after {written!r}")
        self.out.append(python + ("?" if lazy else ""))
        self.atom_open = False

    def brace(self) -> None:
        repeat = _REPEAT.match(self.text, self.i)
        if repeat is None:  # Go reads a brace that starts no repeat as itself, {,n} included
            self.out.append("\\{")
            self.i += 1
            self.atom_open = True
            return
        low, high = int(repeat.group(1)), repeat.group(3)
        if low > MAX_REPEAT or (high and int(high) > MAX_REPEAT):
            raise self.fail(f"invalid repeat count {repeat.group(0)} (Go's limit is {MAX_REPEAT})")
        if high and int(high) < low:
            raise self.fail(f"invalid repeat count {repeat.group(0)}")
        self.quantifier(repeat.group(0), repeat.group(0))
