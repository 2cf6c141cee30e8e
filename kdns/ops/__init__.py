"""Running kdns: HTTP probes, Prometheus metrics, and the light counters the hot path keeps."""
