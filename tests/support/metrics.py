"""The HTTP side of a running kdns: where its /health, /ready and /metrics listen, GET, and the samples
of /metrics read with the Prometheus client's parser."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.support.client import HOST
from tests.support.polling import eventually
from tests.support.process import Server

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]  # (name, sorted labels) -> value


def get(url: str, timeout: float = 5) -> tuple[int, str]:
    """GET ``url``: its status and body, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def http_addresses(line: str) -> dict[str, tuple[str, int]]:
    """(host, port) of each HTTP endpoint a ready line names (``; metrics on 127.0.0.1:9153``)."""
    return {
        name: (host.strip("[]"), int(port))
        for name, host, port in re.findall(r"(health|ready|metrics) on (\S+?):(\d+)(?=;|$)", line)
    }


def endpoint(server: Server, name: str) -> str:
    """``http://HOST:PORT`` of ``server``'s ``name`` endpoint (health, ready or metrics), as its ready
    line says (with ``--workers``, the supervisor's line); any address is asked on loopback."""
    line = eventually(lambda: [x for x in server.logged("ready:") if f"; {name} on " in x])[0]
    host, port = http_addresses(line)[name]
    host = HOST if host in ("*", "") else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def samples(text: str) -> Samples:
    """Every sample of a /metrics text by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(url: str) -> Samples:
    """The samples ``url`` (a /metrics) serves now."""
    status, text = get(url)
    assert status == 200
    return samples(text)


def metric(metrics: str | Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``, in a /metrics text or samples."""
    if isinstance(metrics, str):
        metrics = samples(metrics)
    wanted = set(labels.items())
    return sum(value for (n, have), value in metrics.items() if n == name and wanted <= set(have))
