"""Which objects are exposed: CoreDNS's ``namespaces``, ``labels``, ``namespace_labels`` and
``noendpoints`` options.

``LabelSelector`` parses the Kubernetes label selector syntax (``a=b,c!=d,e in (x,y),f notin (z),g,!h``);
the same string is what the API server takes as ``labelSelector``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_KEY = r"(?:[a-z0-9A-Z.-]{1,253}/)?[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?"
_VALUE = r"(?:[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?)?"
_REQUIREMENT = re.compile(
    rf"""\s*(?:
        (?P<notexists>!\s*(?P<nkey>{_KEY}))
      | (?P<setkey>{_KEY})\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)
      | (?P<eqkey>{_KEY})\s*(?P<eqop>==|=|!=)\s*(?P<value>{_VALUE})
      | (?P<exists>{_KEY})
    )\s*(?:,|$)""",
    re.VERBOSE,
)
_VALUE_ONLY = re.compile(rf"^{_VALUE}$")


class SelectorError(ValueError):
    """The label selector does not parse."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        if self.op == "in":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values


@dataclass(frozen=True, slots=True)
class LabelSelector:
    text: str
    requirements: tuple[Requirement, ...]

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        requirements: list[Requirement] = []
        pos = 0
        while pos < len(text):
            m = _REQUIREMENT.match(text, pos)
            if m is None or m.end() == pos:
                raise SelectorError(f"label selector {text!r}: cannot parse at {text[pos:]!r}")
            requirements.append(_requirement(m, text))
            pos = m.end()
        if not requirements:
            raise SelectorError("label selector is empty")
        return cls(text=text, requirements=tuple(requirements))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def _requirement(m: re.Match[str], text: str) -> Requirement:
    if m["notexists"]:
        return Requirement(m["nkey"], "!")
    if m["setkey"]:
        values = [v.strip() for v in m["values"].split(",")]
        if not all(_VALUE_ONLY.match(v) for v in values):
            raise SelectorError(f"label selector {text!r}: bad value list ({m['values']})")
        return Requirement(m["setkey"], m["setop"], frozenset(values))
    if m["eqkey"]:
        return Requirement(m["eqkey"], "notin" if m["eqop"] == "!=" else "in", frozenset({m["value"]}))
    return Requirement(m["exists"], "exists")


@dataclass(frozen=True, slots=True)
class ObjectFilter:
    """Decides whether a raw API object is exposed in DNS.

    ``namespaces`` (empty: all) limits every namespaced object and the Namespaces themselves;
    ``selector`` limits Services (EndpointSlices follow their Service); ``namespace_selector`` limits
    the Namespaces (the zone serves only what lives in a Namespace it holds: ``namespace_labels``);
    ``slices`` False keeps every EndpointSlice out (``noendpoints``).
    """

    namespaces: frozenset[str] = frozenset()
    selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    slices: bool = True

    @classmethod
    def build(
        cls,
        namespaces: Iterable[str] = (),
        labels: str | None = None,
        *,
        namespace_labels: str | None = None,
        slices: bool = True,
    ) -> ObjectFilter:
        return cls(
            frozenset(namespaces),
            LabelSelector.parse(labels) if labels else None,
            LabelSelector.parse(namespace_labels) if namespace_labels else None,
            slices,
        )

    def namespace_exposed(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces

    def server_selector(self, kind: str) -> str | None:
        """The ``labelSelector`` to list and watch ``kind`` with, so the API sends only what matches."""
        chosen = self._selector_of(kind)
        return chosen.text if chosen is not None else None

    def _selector_of(self, kind: object) -> LabelSelector | None:
        if kind == "Service":
            return self.selector
        return self.namespace_selector if kind == "Namespace" else None

    def accepts(self, raw: Mapping[str, Any]) -> bool:
        meta = raw.get("metadata")
        if not isinstance(meta, Mapping):
            return True  # let the converter name the problem
        kind = raw.get("kind")
        if kind in ("EndpointSlice", "Endpoints") and not self.slices:  # noendpoints: neither kind
            return False
        namespace = meta.get("name") if kind == "Namespace" else meta.get("namespace")
        if self.namespaces and namespace not in self.namespaces:
            return False
        selector = self._selector_of(kind)
        if selector is not None:
            labels = meta.get("labels")
            return selector.matches(labels if isinstance(labels, Mapping) else {})
        return True
