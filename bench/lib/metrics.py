"""kdns's Prometheus metrics as a benchmark reads them: one scrape of ``/metrics``, and a sample's value
by name and labels (parsed with ``prometheus_client``'s own text parser)."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bench.lib.servers import HOST


@dataclass(frozen=True, slots=True)
class Metrics:
    samples: tuple[Sample, ...]

    def value(self, name: str, **labels: str) -> float:
        """The samples called ``name`` whose labels include ``labels``, added up (0 when there are none):
        ``value("coredns_dns_requests_total", proto="udp")``."""
        wanted = labels.items()
        return sum(s.value for s in self.samples if s.name == name and wanted <= s.labels.items())


def scrape(port: int, timeout: float = 10.0) -> Metrics:
    """The metrics served at ``http://127.0.0.1:PORT/metrics``."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=timeout) as response:
        text = response.read().decode()
    return Metrics(tuple(s for family in text_string_to_metric_families(text) for s in family.samples))
