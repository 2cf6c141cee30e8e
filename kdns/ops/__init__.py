"""Running kdns: HTTP probes, Prometheus metrics read from the counters other parts keep, the query log."""
