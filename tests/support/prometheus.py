"""A real Prometheus (Debian's ``prometheus`` package) scraping kdns on loopback, asked over its HTTP
API; and the dashboards and alert rules kept in ``tests/dashboards/``, with Grafana's variables
substituted as Grafana would."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support.client import HOST
from tests.support.paths import ROOT
from tests.support.polling import eventually
from tests.support.process import free_port, stop

PROMETHEUS = "/usr/bin/prometheus"
DASHBOARDS = ROOT / "tests" / "dashboards"
SCRAPE_INTERVAL = "1s"
# Grafana's own variables: a rate window of several scrapes, and an offset a scrape or two back
GRAFANA_BUILTINS = {"$__rate_interval": "10s", "$__interval": "2s"}
REGEX_SPECIAL = frozenset("\\^$.|?*+()[]{}")
# a vector selector: a metric name and its label matchers
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")


@dataclass
class Prometheus:
    url: str

    def query(self, expr: str) -> dict:
        """The API's answer to an instant query: ``status`` and ``data`` (or ``error``)."""
        params = urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query?{params}", timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            return json.load(error)

    def results(self, expr: str) -> list[dict]:
        answer = self.query(expr)
        assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
        return answer["data"]["result"]

    def label_values(self, label: str, selector: str) -> list[str]:
        """Grafana's ``label_values(SELECTOR, LABEL)``."""
        params = urllib.parse.urlencode({"match[]": selector})
        with urllib.request.urlopen(
            f"{self.url}/api/v1/label/{label}/values?{params}", timeout=10
        ) as response:
            return json.load(response)["data"]


@contextmanager
def scraping(
    directory: Path, targets: list[str], labels: dict[str, str], job: str = "kube-dns"
) -> Iterator[Prometheus]:
    """Prometheus scraping ``targets`` (``HOST:PORT``) every second as ``job``, each target also
    labelled with ``labels`` and ``pod`` ``coredns-<n>`` (as a Kubernetes service discovery would)."""
    port = free_port()
    static = [
        {"targets": [target], "labels": {**labels, "pod": f"coredns-{n}"}} for n, target in enumerate(targets)
    ]
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [{"job_name": job, "static_configs": static}],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address={HOST}:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(directory / "prometheus.log").open("w"),
    )
    try:
        prometheus = Prometheus(f"http://{HOST}:{port}")
        eventually(lambda: _ready(prometheus.url), timeout=30, interval=0.2)
        yield prometheus
    finally:
        stop(process, grace=10)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def scraped(prometheus: Prometheus, times: int, timeout: float = 60) -> None:
    """Wait until every target has been scraped up at least ``times`` times."""

    def enough() -> bool:
        counts = prometheus.results(f"count_over_time(up[{times * 10}s])")
        ups = prometheus.results("up")
        return (
            bool(counts)
            and all(float(r["value"][1]) >= times for r in counts)
            and all(r["value"][1] == "1" for r in ups)
        )

    eventually(enough, timeout=timeout, interval=0.5)


def dashboards() -> dict[str, dict]:
    """Every collected dashboard by name: its ``alerts``, ``variables`` and ``panels``."""
    return {path.stem: yaml.safe_load(path.read_text()) for path in sorted(DASHBOARDS.glob("*.yaml"))}


def variables(prometheus: Prometheus, dashboard: dict) -> dict[str, list[str]]:
    """Each template variable's values, in order (a later variable's query may use an earlier one)."""
    values: dict[str, list[str]] = {}
    for variable in dashboard.get("variables", ()):
        match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", variable["query"].strip())
        assert match, variable["query"]
        selector = substitute(match[1], values)
        found = prometheus.label_values(match[2], selector)
        if "regex" in variable:
            found = [v for v in found if re.fullmatch(variable["regex"], v)]
        values[variable["name"]] = found
    return values


def substitute(expr: str, values: dict[str, list[str]]) -> str:
    """``expr`` with Grafana's variables replaced: a variable by the regex of all its values (what
    Grafana writes for "All" in a ``=~`` matcher), its built-ins by fixed windows."""
    for name in sorted(values, key=len, reverse=True):
        regex = "|".join(_regex_literal(v) for v in values[name])
        for spelling in (f"${{{name}}}", f"${name}"):
            expr = expr.replace(spelling, f"({regex})" if len(values[name]) > 1 else regex)
    for name, value in GRAFANA_BUILTINS.items():
        expr = expr.replace(name, value)
    return expr


def _regex_literal(value: str) -> str:
    """``value`` as a regex inside a PromQL string (each metacharacter's backslash itself escaped)."""
    return "".join(f"\\\\{c}" if c in REGEX_SPECIAL else c for c in value)


def selectors(expr: str) -> list[str]:
    """The vector selectors ``expr`` reads (``name{matchers}``), the aggregations' names left out."""
    return [f"{name}{{{matchers}}}" for name, matchers in SELECTOR.findall(expr)]
