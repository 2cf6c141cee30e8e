"""CoreDNS Corefiles: ``kdns serve --corefile FILE`` runs a cluster's existing Corefile as written.

This module owns the Corefile syntax, the Caddyfile dialect CoreDNS reads (server blocks, directives
with ``{ }`` option blocks, ``#`` comments, quoted strings, ``{$VAR}``/``{env.VAR}``, ``import`` of
files, globs and snippets), and its mapping onto ``ServeConfig`` for the plugins that kubeadm, k3s,
RKE2, EKS, AKS and kops put in the ``coredns`` ConfigMap. What kdns cannot honour stops loading with
``CorefileError("FILE:LINE: problem")``; what it accepts but ignores comes back as a warning in the
same form.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from glob import glob
from pathlib import Path
from typing import NoReturn, TypeVar
from urllib.parse import urlsplit

from kdns.cluster.selector import LabelSelector, SelectorError
from kdns.config import (
    CACHE_TTL,
    COREFILE_HOSTS_FILE,
    COREFILE_LISTEN,
    COREFILE_METRICS,
    COREFILE_PODS,
    COREFILE_PORT,
    COREFILE_RELOAD,
    COREFILE_SERVE_STALE,
    COUNT,
    DEFAULT_HEALTH,
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_READY,
    DEFAULT_STARTUP_TIMEOUT,
    DEFAULT_TTL,
    DEFAULT_ZONES,
    EVERY_ZONE,
    HOSTS_TTL,
    LOADBALANCE_POLICY,
    MAX_UPSTREAMS,
    NOT_NEGATIVE,
    RELOAD,
    RELOAD_JITTER,
    SECONDS,
    SERVFAIL_TTL,
    TTL,
    WHOLE_NUMBER,
    Bounds,
    CacheSettings,
    ForwardPolicy,
    ForwardSettings,
    HostsSettings,
    KubeSettings,
    NotAnIPAddress,
    OpsSettings,
    PodMode,
    ServeConfig,
    ServerSettings,
    ZoneSettings,
    choices,
    parse_choice,
    parse_ip,
    parse_port,
    parse_upstream,
    parse_whole_number,
    split_address,
)
from kdns.zone.names import BadName, ZoneLayout, to_wire

__all__ = [
    "CorefileError",
    "Directive",
    "ServerBlock",
    "Token",
    "load",
    "parse",
    "parse_duration",
    "tokenize",
]

MAX_IMPORTS = 1000  # as CoreDNS's parser: more imports than this is a runaway (or a cycle)

# Plugins CoreDNS knows that kdns does not implement: refused by name rather than as unknown.
UNSUPPORTED_PLUGINS = frozenset(
    {
        "acl", "any", "auto", "azure", "bufsize", "cancel", "chaos", "clouddns", "dns64", "dnssec",
        "dnstap", "erratic", "etcd", "fanout", "federation", "file", "geoip", "grpc", "grpc_server",
        "header", "https", "https3", "k8s_external", "local", "metadata", "minimal", "multisocket",
        "nomad", "nsid", "on", "pprof", "proxy", "proxyproto", "quic", "rewrite", "root", "route53",
        "secondary", "sign", "timeouts", "tls", "trace", "transfer", "tsig", "view", "whoami",
    }
)  # fmt: skip
REPEATABLE = frozenset({"bind", "log", "template"})


class CorefileError(ValueError):
    """The Corefile does not parse, or asks for something kdns does not do; ``FILE:LINE: problem``."""


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
    text: str,
    file: str = "Corefile",
    *,
    environ: Mapping[str, str] = os.environ,
    warnings: list[str] | None = None,
) -> list[tuple[Token, ...]]:
    """Split Corefile text into lines of tokens, as CoreDNS's lexer does.

    Words are separated by white space; ``#`` starts a comment to the end of the line, even inside a
    word; a word starting with ``"`` runs to the closing quote (``\\"`` is a quote, newlines are kept).
    A quoted word spanning lines belongs to the line it starts on. ``{$VAR}``, ``{%VAR%}`` and
    ``{env.VAR}`` are replaced in every word; an unset variable reads as empty, with a warning.
    """
    warnings = [] if warnings is None else warnings

    def substitute(word: str, line: int) -> str:
        def value(m: re.Match[str]) -> str:
            name = m[1] or m[2] or m[3]
            if name not in environ:
                warnings.append(f"{file}:{line}: environment variable {name} is not set; it reads as ''")
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
    return lines


@dataclass(frozen=True, slots=True)
class _Line:
    tokens: tuple[Token, ...]
    chain: tuple[str, ...]  # the files and snippets imported to reach this line, to catch cycles


class _Parser:
    """Server blocks from lines of tokens, splicing ``import``s in as CoreDNS does, at any line start."""

    def __init__(self, environ: Mapping[str, str], warnings: list[str]) -> None:
        self._environ = environ
        self._warnings = warnings
        self._pending: list[_Line] = []  # a stack: the next line is last
        self._snippets: dict[str, list[_Line]] = {}
        self._imports = 0

    def parse(self, path: Path) -> list[ServerBlock]:
        file = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CorefileError(f"{file}: cannot read the Corefile: {_reason(exc)}") from None
        lines = tokenize(text, file, environ=self._environ, warnings=self._warnings)
        self._pending = [_Line(tokens, (os.path.abspath(file),)) for tokens in reversed(lines)]
        blocks = []
        while (line := self._next()) is not None:
            block = self._server_block(line)
            if block is not None:
                blocks.append(block)
        return blocks

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
        if re.search(r"[*?\[]", full):
            matches = sorted(glob(full))  # may be none: k3s and AKS import optional ConfigMaps so
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
            lines = tokenize(text, match, environ=self._environ, warnings=self._warnings)
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


def parse(path: Path, *, environ: Mapping[str, str] = os.environ) -> tuple[list[ServerBlock], list[str]]:
    """The server blocks of a Corefile and the warnings met on the way (unset environment variables)."""
    warnings: list[str] = []
    return _Parser(environ, warnings).parse(Path(path)), warnings


# --- values ------------------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` in seconds: ``500ms``, ``5s``, ``1m30s``, ``1.5h``, ``0``; ValueError."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None:
            break
        total += float(m[1]) * _UNIT_SECONDS[m[2]]
        pos = m.end()
    if not body or pos != len(body):
        raise ValueError(f"{text!r} is not a duration (such as 500ms, 5s, 1m or 1h)")
    return -total if text.startswith("-") else total


_T = TypeVar("_T")


def _value(token: Token, what: str, parse: Callable[[str], _T]) -> _T:
    """``parse(token.text)``; a ValueError's problem stops loading as ``FILE:LINE: what: problem``."""
    try:
        return parse(token.text)
    except ValueError as exc:
        _fail(token, f"{what}: {exc}")


def _duration(token: Token, what: str, bounds: Bounds = SECONDS) -> float:
    return _value(token, what, lambda text: bounds.require(parse_duration(text)))


def _integer(token: Token, what: str, bounds: Bounds = NOT_NEGATIVE) -> int:
    return _value(token, what, partial(parse_whole_number, bounds=bounds))


_ZONE_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


def _zones(token: Token) -> list[str]:
    """Zone names (lowercase, no final dot; ``.`` for the root) of a zone or a CIDR, as CoreDNS reads them."""
    text = token.text.removeprefix("dns://")
    if text == ".":
        return ["."]
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            _fail(token, f"{token.text!r} is neither a zone nor a CIDR")
        return _reverse_zones(network)
    name = text.rstrip(".").lower()
    if not _ZONE_NAME.fullmatch(name):
        _fail(token, f"{token.text!r} is not a valid zone name")
    try:
        to_wire(name)
    except BadName as exc:
        _fail(token, f"{token.text!r} is not a valid zone: {exc}")
    return [name]


def _reverse_zones(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
    """The reverse zones covering a CIDR; a prefix between label boundaries gives several."""
    bits, suffix = (8, "in-addr.arpa") if network.version == 4 else (4, "ip6.arpa")
    prefix = -(-network.prefixlen // bits) * bits
    zones = []
    for subnet in network.subnets(new_prefix=prefix):
        digits = subnet.network_address.packed
        labels = [str(b) for b in digits] if bits == 8 else list(digits.hex())
        zones.append(".".join([*reversed(labels[: prefix // bits]), suffix]))
    return zones


def _within(name: str, zone: str) -> bool:
    return zone in {".", name} or name.endswith("." + zone)


def _host_port(token: Token, what: str) -> str:
    """An ``HOST:PORT`` listen address, kept as written (``:PORT`` is every interface)."""
    _value(token, what, split_address)
    return token.text


def _upstream(token: Token) -> str | None:
    """``IP``, ``IP:PORT`` or ``[IPv6]:PORT`` of a forward target, without ``dns://``; None when no IP
    is written (a resolv.conf file, perhaps)."""
    try:
        parse_upstream(token.text)
    except NotAnIPAddress:
        return None
    except ValueError as exc:
        _fail(token, f"forward: {exc}")
    return token.text.removeprefix("dns://")


def _args(d: Directive, low: int, high: int | None, usage: str) -> tuple[Token, ...]:
    if len(d.args) < low or (high is not None and len(d.args) > high):
        _fail(d.name, f"wrong number of arguments: {usage}")
    return d.args


def _no_block(d: Directive, what: str | None = None) -> None:
    if d.block is not None:
        _fail(d.name, f"{what or d.name.text} takes no '{{' block")


def _unknown_option(owner: Directive, option: Directive) -> NoReturn:
    _fail(option.name, f"{owner.name.text}: unknown option {option.name.text!r}")


# --- mapping -----------------------------------------------------------------------------------------


class _Mapper:
    """ServeConfig fields from the root server block, directive by directive."""

    def __init__(self, environ: Mapping[str, str], warnings: list[str]) -> None:
        self.environ = environ
        self.warnings = warnings
        self.zones: tuple[str, ...] = DEFAULT_ZONES
        self.ttl = DEFAULT_TTL
        self.pods = COREFILE_PODS
        self.endpoint_pod_names = False
        self.ignore_empty_service = False
        self.namespaces: list[str] = []
        self.labels: str | None = None
        self.kubeconfig: Path | None = None
        self.context: str | None = None
        self.startup_timeout = DEFAULT_STARTUP_TIMEOUT
        self.fallthrough: tuple[str, ...] = ()
        self.listen: list[str] = []
        self.forward: ForwardSettings | None = None
        self.cache: CacheSettings | None = None
        self.hosts: HostsSettings | None = None
        self.ops = OpsSettings()
        self.loadbalance = False
        self.autopath = False
        self.log_queries = False
        self.reload = 0.0

    def warn(self, token: Token, message: str) -> None:
        self.warnings.append(f"{token.where}: {message}")

    def map(self, block: ServerBlock, block_zones: list[str]) -> None:
        handlers: dict[str, Callable[[Directive], None]] = {
            "kubernetes": lambda d: None,
            "forward": self.forward_,
            "cache": self.cache_,
            "health": self.health,
            "ready": self.ready,
            "prometheus": self.prometheus,
            "errors": self.errors,
            "log": self.log,
            "loop": self.loop,
            "reload": self.reload_,
            "loadbalance": self.loadbalance_,
            "hosts": self.hosts_,
            "autopath": self.autopath_,
            "bind": self.bind,
            "debug": self.debug,
            "template": self.template,
        }
        seen: dict[str, Token] = {}
        for d in block.directives:
            name = d.name.text
            if name in UNSUPPORTED_PLUGINS:
                hint = " (CoreDNS itself dropped it in 1.6; forward replaces it)" if name == "proxy" else ""
                _fail(d.name, f"plugin {name} is not supported by kdns{hint}")
            if name not in handlers:
                _fail(d.name, f"unknown directive {name!r}")
            if name in seen and name not in REPEATABLE:
                _fail(d.name, f"{name} is given twice in one server block (first at {seen[name].where})")
            seen.setdefault(name, d.name)
        if "kubernetes" not in seen:
            _fail(block.keys[0], "no kubernetes directive: kdns serves a cluster's names")
        kubernetes = next(d for d in block.directives if d.name.text == "kubernetes")
        self.kubernetes(kubernetes, block_zones)  # first: forward, cache and autopath depend on it
        for d in block.directives:
            if d is not kubernetes:
                handlers[d.name.text](d)

    # kubernetes

    def kubernetes(self, d: Directive, block_zones: list[str]) -> None:
        zones = [z for token in d.args for z in _zones(token)] if d.args else list(block_zones)
        if "." in zones:
            self.warn(d.name, "kubernetes: kdns does not serve the cluster at the root zone '.'")
        zones = list(dict.fromkeys(z for z in zones if z != "."))
        if not zones:
            zones = list(DEFAULT_ZONES)
            self.warn(d.name, f"kubernetes: serving the default zones {' '.join(zones)}")
        try:
            ZoneLayout.of(zones)
        except BadName as exc:
            _fail(d.name, f"kubernetes: {exc}")
        self.zones = tuple(zones)
        # endpoint last: whether it matters depends on kubeconfig
        for option in sorted(d.options, key=lambda o: o.name.text == "endpoint"):
            self.kubernetes_option(d, option)

    def kubernetes_option(self, d: Directive, o: Directive) -> None:
        name, args = o.name.text, o.args
        _no_block(o, f"kubernetes option {name}")
        match name:
            case "pods":
                mode = _args(o, 1, 1, f"pods {choices(PodMode)}")[0]
                self.pods = _value(mode, name, partial(parse_choice, PodMode))
            case "ttl":
                self.ttl = _integer(_args(o, 1, 1, "ttl SECONDS")[0], name, TTL)
            case "namespaces":
                self.namespaces += [t.text for t in _args(o, 1, None, "namespaces NAMESPACE...")]
            case "labels":
                self.labels = " ".join(t.text for t in _args(o, 1, None, "labels SELECTOR"))
                try:
                    LabelSelector.parse(self.labels)
                except SelectorError as exc:
                    _fail(o.name, f"labels: {exc}")
            case "endpoint_pod_names":
                _args(o, 0, 0, "endpoint_pod_names")
                self.endpoint_pod_names = True
            case "ignore":
                value = _args(o, 1, 1, "ignore empty_service")[0]
                if value.text != "empty_service":
                    _fail(value, f"ignore: {value.text!r} is not empty_service")
                self.ignore_empty_service = True
            case "fallthrough":
                self.kubernetes_fallthrough(o)
            case "kubeconfig":
                _args(o, 1, 2, "kubeconfig FILE [CONTEXT]")
                self.kubeconfig = Path(args[0].text)
                self.context = args[1].text if len(args) > 1 else None
            case "endpoint":
                self.kubernetes_endpoint(o)
            case "startup_timeout":
                self.startup_timeout = _duration(_args(o, 1, 1, "startup_timeout DURATION")[0], name)
            case "apiserver_qps" | "apiserver_burst" | "apiserver_max_inflight":
                _integer(_args(o, 1, 1, f"{name} N")[0], name)
                self.warn(o.name, f"kubernetes: {name} is ignored: kdns lists and watches at its own pace")
            case "upstream" | "resyncperiod":
                self.warn(o.name, f"kubernetes: {name} is obsolete and ignored")
            case "noendpoints" | "multicluster" | "namespace_labels" | "tls" | "transfer":
                _fail(o.name, f"kubernetes: option {name} is not supported by kdns")
            case _:
                _unknown_option(d, o)

    def kubernetes_fallthrough(self, o: Directive) -> None:
        zones = [zone for token in o.args for zone in _zones(token)]
        self.fallthrough = tuple(dict.fromkeys(zones)) or EVERY_ZONE

    def kubernetes_endpoint(self, o: Directive) -> None:
        url = _args(o, 1, None, "endpoint URL")[0]
        try:
            host = urlsplit(url.text).hostname
        except ValueError:
            host = None
        in_cluster = {"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc."}
        in_cluster.add(self.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes"))
        if self.kubeconfig is None and host not in in_cluster:
            _fail(
                o.name, "kubernetes: endpoint is not supported: kdns uses the in-cluster API or 'kubeconfig'"
            )
        source = "the kubeconfig" if self.kubeconfig is not None else "the in-cluster configuration"
        self.warn(o.name, f"kubernetes: endpoint is ignored: kdns uses {source}")

    # forward

    def forward_(self, d: Directive) -> None:
        args = _args(d, 2, None, "forward FROM TO...")
        if _zones(args[0]) != ["."]:
            _fail(args[0], "forward: only forwarding of '.' is supported (no stub domains)")
        if len(args) - 1 > MAX_UPSTREAMS:
            _fail(args[MAX_UPSTREAMS + 1], f"forward: more than {MAX_UPSTREAMS} upstreams")
        upstreams: list[str] = []
        files: list[Token] = []
        for to in args[1:]:
            address = _upstream(to)
            if address is not None:
                upstreams.append(address)
            elif "/" in to.text or os.path.isfile(to.text):
                files.append(to)
            else:
                _fail(to, f"forward: {to.text!r} is neither an IP address nor a resolv.conf file")
        if len(files) > 1 or (files and upstreams):
            _fail(files[-1], "forward: give either one resolv.conf file or IP addresses, not both")
        settings: dict[str, object] = {"upstreams": tuple(upstreams)}
        if files:
            settings["resolv_conf"] = Path(files[0].text)
        for option in d.options:
            self.forward_option(d, option, settings)
        self.forward = ForwardSettings(**settings)  # type: ignore[arg-type]

    def forward_option(self, d: Directive, o: Directive, settings: dict[str, object]) -> None:
        name = o.name.text
        _no_block(o, f"forward option {name}")
        match name:
            case "max_concurrent":
                n = _integer(_args(o, 1, 1, "max_concurrent N")[0], name)
                if n == 0:
                    self.warn(
                        o.name,
                        "forward: max_concurrent 0 (no limit) is not supported; "
                        f"kdns keeps {DEFAULT_MAX_CONCURRENT}",
                    )
                else:
                    settings["max_concurrent"] = n
            case "policy":
                policy = _args(o, 1, 1, f"policy {choices(ForwardPolicy)}")[0]
                settings["policy"] = _value(policy, name, partial(parse_choice, ForwardPolicy))
            case "health_check":
                args = _args(o, 1, None, "health_check DURATION [no_rec] [domain NAME]")
                seconds = _duration(args[0], name)
                if seconds > 0:
                    settings["health_check"] = seconds
                else:
                    self.warn(o.name, "forward: health_check 0 does not turn health checks off in kdns")
                if len(args) > 1:
                    self.warn(args[1], "forward: health_check's no_rec and domain are ignored")
            case "max_fails":
                settings["max_fails"] = _integer(_args(o, 1, 1, "max_fails N")[0], name)
            case "force_tcp":
                _args(o, 0, 0, "force_tcp")
                settings["force_tcp"] = True
            case "prefer_udp":
                _args(o, 0, 0, "prefer_udp")
            case "expire":
                _duration(_args(o, 1, 1, "expire DURATION")[0], name)
                self.warn(o.name, "forward: expire is not used: kdns does not keep upstream connections open")
            case (
                "except" | "tls" | "tls_servername" | "next" | "failover" | "failfast_all_unhealthy_upstreams"
            ):
                _fail(o.name, f"forward: option {name} is not supported by kdns")
            case _:
                _unknown_option(d, o)

    # cache

    def cache_(self, d: Directive) -> None:
        args = list(d.args)
        settings: dict[str, int | float] = {}
        if args and WHOLE_NUMBER.fullmatch(args[0].text):
            ttl = _integer(args.pop(0), "cache TTL", CACHE_TTL)
            settings["success_ttl"] = settings["denial_ttl"] = ttl
        if any(z != "." for token in args for z in _zones(token)):
            self.warn(args[0], "cache: zones are ignored: kdns caches every forwarded answer")
        min_ttls: dict[str, int] = {}
        for option in d.options:
            self.cache_option(d, option, settings, min_ttls)
        if len(set(min_ttls.values())) > 1:
            self.warn(d.name, "cache: kdns has one minimum TTL for success and denial; using the lower")
        if min_ttls:
            settings["min_ttl"] = min(min_ttls.values())
        self.cache = CacheSettings(**settings)  # type: ignore[arg-type]

    def cache_option(
        self, d: Directive, o: Directive, settings: dict[str, int | float], min_ttls: dict[str, int]
    ) -> None:
        name = o.name.text
        _no_block(o, f"cache option {name}")
        match name:
            case "success" | "denial":
                args = _args(o, 1, 3, f"{name} CAPACITY [TTL [MINTTL]]")
                settings[f"{name}_capacity"] = _integer(args[0], f"{name} capacity", COUNT)
                if len(args) > 1:
                    settings[f"{name}_ttl"] = _integer(args[1], f"{name} TTL", CACHE_TTL)
                if len(args) > 2:
                    min_ttls[name] = _integer(args[2], f"{name} minimum TTL")
            case "prefetch":
                _args(o, 1, 3, "prefetch AMOUNT [[DURATION] [PERCENTAGE%]]")
                self.warn(o.name, "cache: prefetch is ignored")
            case "serve_stale":
                args = _args(o, 0, 2, "serve_stale [DURATION [immediate|verify]]")
                settings["serve_stale"] = _duration(args[0], name) if args else COREFILE_SERVE_STALE
                mode = args[1].text.lower() if len(args) > 1 else "immediate"
                if mode not in {"immediate", "verify"}:
                    _fail(args[1], f"serve_stale: {args[1].text!r} is not immediate or verify")
                if mode == "immediate":
                    self.warn(
                        o.name, "cache: serve_stale answers stale only once the upstreams fail ('verify')"
                    )
            case "servfail":
                seconds = _duration(_args(o, 1, 1, "servfail DURATION")[0], name, SERVFAIL_TTL)
                settings["servfail_ttl"] = math.ceil(seconds)
            case "disable":
                self.cache_disable(o)
            case "keepttl":
                _args(o, 0, 0, "keepttl")
                self.warn(o.name, "cache: keepttl is ignored: cached answers count their TTL down")
            case _:
                _unknown_option(d, o)

    def cache_disable(self, o: Directive) -> None:
        args = _args(o, 1, None, "disable success|denial [ZONES...]")
        if args[0].text not in {"success", "denial"}:
            _fail(args[0], f"cache: disable {args[0].text!r}: expected success or denial")
        zones = [z for token in args[1:] for z in _zones(token)] or ["."]
        if not all(any(_within(z, own) for own in self.zones) for z in zones):
            self.warn(
                o.name, "cache: disable is ignored outside the cluster zones: kdns caches forwarded answers"
            )

    # health, ready, prometheus

    def health(self, d: Directive) -> None:
        args = _args(d, 0, 1, "health [ADDRESS]")
        health = _host_port(args[0], "health") if args else DEFAULT_HEALTH
        lameduck = self.ops.lameduck
        for o in d.options:
            _no_block(o)
            if o.name.text != "lameduck":
                _unknown_option(d, o)
            lameduck = _duration(_args(o, 1, 1, "lameduck DURATION")[0], "lameduck")
        self.ops = replace(self.ops, health=health, lameduck=lameduck)

    def ready(self, d: Directive) -> None:
        _no_block(d)
        args = _args(d, 0, 1, "ready [ADDRESS]")
        ready = _host_port(args[0], "ready") if args else DEFAULT_READY
        self.ops = replace(self.ops, ready=ready)

    def prometheus(self, d: Directive) -> None:
        _no_block(d)
        args = _args(d, 0, 1, "prometheus [ADDRESS]")
        metrics = _host_port(args[0], "prometheus") if args else COREFILE_METRICS
        self.ops = replace(self.ops, metrics=metrics)

    # errors, log, loop, debug

    def errors(self, d: Directive) -> None:
        args = _args(d, 0, 1, "errors [stdout]")
        if args and args[0].text != "stdout":
            _fail(args[0], "errors: only stdout is a valid argument")
        for o in d.options:
            if o.name.text not in {"consolidate", "stacktrace"}:
                _unknown_option(d, o)
            self.warn(o.name, f"errors: {o.name.text} is ignored: kdns logs each error in its own format")

    def log(self, d: Directive) -> None:
        classes: set[str] = set()
        for o in d.options:
            if o.name.text != "class":
                _unknown_option(d, o)
            classes |= {t.text for t in _args(o, 1, None, "class CLASS...")}
        if classes - {"all", "success", "denial", "error"}:
            _fail(d.name, f"log: unknown classes {' '.join(sorted(classes))}")
        if classes == {"error"}:
            self.warn(d.name, "log: only errors are asked for: kdns logs them anyway, not queries")
            return
        self.log_queries = True
        if d.args or classes:
            self.warn(d.name, "log: names, format and classes are ignored: kdns logs every query its own way")

    def loop(self, d: Directive) -> None:
        _no_block(d)
        _args(d, 0, 0, "loop")

    def debug(self, d: Directive) -> None:
        _no_block(d)
        _args(d, 0, 0, "debug")
        self.warn(d.name, "debug is ignored (kdns has --log-level debug)")

    # reload, loadbalance, autopath, bind

    def reload_(self, d: Directive) -> None:
        _no_block(d)
        args = _args(d, 0, 2, "reload [INTERVAL [JITTER]]")
        self.reload = _duration(args[0], "reload interval", RELOAD) if args else COREFILE_RELOAD
        if len(args) > 1:
            _duration(args[1], "reload jitter", RELOAD_JITTER)

    def loadbalance_(self, d: Directive) -> None:
        _no_block(d)
        args = _args(d, 0, None, f"loadbalance [{LOADBALANCE_POLICY}]")
        if args and (args[0].text != LOADBALANCE_POLICY or len(args) > 1):
            _fail(
                args[0], f"loadbalance: policy {args[0].text!r} is not supported (only {LOADBALANCE_POLICY})"
            )
        self.loadbalance = True

    def autopath_(self, d: Directive) -> None:
        _no_block(d)
        if [t.text for t in d.args] != ["@kubernetes"]:
            _fail(d.name, "autopath: only 'autopath @kubernetes' is supported")
        if self.pods is not PodMode.VERIFIED:
            self.warn(d.name, "autopath does nothing without 'pods verified' (as in CoreDNS)")
            return
        self.autopath = True

    def bind(self, d: Directive) -> None:
        if d.block is not None:
            _fail(d.name, "bind: except is not supported by kdns")
        for token in _args(d, 1, None, "bind ADDRESS..."):
            try:
                self.listen.append(parse_ip(token.text))
            except ValueError as exc:
                _fail(token, f"bind: {exc} (interface names are not supported)")

    # hosts, template

    def hosts_(self, d: Directive) -> None:
        args = d.args
        path = Path(args[0].text) if args else COREFILE_HOSTS_FILE
        settings: dict[str, object] = {"path": path}
        zones = [zone for token in args[1:] for zone in _zones(token)]
        if zones:
            settings["zones"] = tuple(dict.fromkeys(zones))
        entries: list[tuple[str, str]] = []
        for o in d.options:
            _no_block(o, f"hosts option {o.name.text}")
            self.hosts_option(o, settings, entries)
        self.hosts = HostsSettings(**settings, entries=tuple(entries))  # type: ignore[arg-type]

    def hosts_option(self, o: Directive, settings: dict[str, object], entries: list[tuple[str, str]]) -> None:
        name = o.name.text
        match name:
            case "ttl":
                settings["ttl"] = _integer(_args(o, 1, 1, "ttl SECONDS")[0], "hosts ttl", HOSTS_TTL)
            case "reload":
                settings["reload"] = _duration(_args(o, 1, 1, "reload DURATION")[0], "hosts reload")
            case "fallthrough":
                zones = [zone for token in o.args for zone in _zones(token)]
                settings["fallthrough"] = tuple(dict.fromkeys(zones)) or EVERY_ZONE
            case "no_reverse" | "fallthrough_unsupported":
                _args(o, 0, 0, name)
                self.warn(o.name, f"hosts: {name} is ignored")
            case _:
                if settings.get("fallthrough"):
                    _fail(o.name, f"hosts: unknown option {name!r}")
                try:
                    ip = ipaddress.ip_address(name.split("%")[0])
                except ValueError:
                    self.warn(o.name, f"hosts: {name!r} is not an IP address; the line is skipped")
                    return
                if not o.args:
                    self.warn(o.name, f"hosts: {name} has no names; the line is skipped")
                entries += [(str(ip), t.text.rstrip(".").lower()) for t in o.args]

    def template(self, d: Directive) -> None:
        _args(d, 1, None, "template CLASS [TYPE [ZONE...]]")
        options = {o.name.text for o in d.options}
        nxdomain = all(
            len(o.args) == 1 and o.args[0].text.upper() == "NXDOMAIN"
            for o in d.options
            if o.name.text == "rcode"
        )
        if "rcode" not in options or not nxdomain or options - {"rcode", "match", "fallthrough"}:
            _fail(d.name, "plugin template is not supported by kdns (beyond templates that answer NXDOMAIN)")
        zones = " ".join(t.text for t in d.args[2:]) or "every name"
        self.warn(d.name, f"template: kdns does not answer NXDOMAIN for {zones} itself; forward gets them")

    def config(self, path: Path, zones: tuple[str, ...], port: int) -> ServeConfig:
        return ServeConfig(
            zone=ZoneSettings(
                zones=self.zones,
                ttl=self.ttl,
                pods=self.pods,
                endpoint_pod_names=self.endpoint_pod_names,
                ignore_empty_service=self.ignore_empty_service,
                fallthrough=self.fallthrough,
            ),
            kube=KubeSettings(
                kubeconfig=self.kubeconfig,
                context=self.context,
                in_cluster=self.kubeconfig is None,
                startup_timeout=self.startup_timeout,
            ),
            namespaces=tuple(dict.fromkeys(self.namespaces)),
            labels=self.labels,
            servers=(
                ServerSettings(
                    zones=zones,
                    port=port,
                    listen=tuple(dict.fromkeys(self.listen)) or COREFILE_LISTEN,
                    forward=(self.forward,) if self.forward is not None else (),
                    cache=self.cache,
                    hosts=self.hosts,
                    loadbalance=self.loadbalance,
                    autopath=self.autopath,
                    log_queries=self.log_queries,
                ),
            ),
            ops=self.ops,
            corefile=path,
            reload=self.reload,
        )


def _server_key(token: Token) -> tuple[list[str], int]:
    """The zones and port of a server block key ``[dns://]ZONE[:PORT]``."""
    text = token.text
    if "://" in text:
        scheme, text = text.split("://", 1)
        if scheme != "dns":
            _fail(token, f"{scheme}:// servers are not supported by kdns (only plain DNS)")
    zone, port = text, None
    if text.count(":") == 1 or (text.count(":") > 1 and "/" not in text):
        zone, _, port = text.rpartition(":")
    if not zone:
        _fail(token, f"{token.text!r} names no zone")
    zones = _zones(Token(zone, token.file, token.line))
    return zones, COREFILE_PORT if port is None else _value(
        token, repr(token.text), lambda _: parse_port(port)
    )


def load(path: Path, *, environ: Mapping[str, str] = os.environ) -> tuple[ServeConfig, list[str]]:
    """The ServeConfig a Corefile asks for, and warnings (``FILE:LINE: ...``) for what kdns ignores."""
    path = Path(path)
    blocks, warnings = parse(path, environ=environ)
    if not blocks:
        raise CorefileError(f"{path}:1: no server block")
    main: ServerBlock | None = None
    main_zones: list[str] = []
    port = COREFILE_PORT
    for block in blocks:
        keys = [_server_key(key) for key in block.keys]
        if main is not None or not any("." in zones for zones, _ in keys):
            _fail(
                block.keys[0],
                f"only one server block (for '.') is supported; {block.keys[0].text!r} is another "
                "(stub domains and extra ports are not supported)",
            )
        ports = {p for _, p in keys}
        if len(ports) > 1:
            _fail(block.keys[0], "the server block listens on several ports; kdns serves one")
        main, port = block, ports.pop()
        main_zones = [z for zones, _ in keys for z in zones]
    assert main is not None
    mapper = _Mapper(environ, warnings)
    mapper.map(main, main_zones)
    block_zones = tuple(dict.fromkeys(main_zones))
    return mapper.config(path, block_zones, port), list(dict.fromkeys(mapper.warnings))
