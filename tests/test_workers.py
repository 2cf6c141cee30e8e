"""Adding up the workers' metrics: counters and histograms add, shared gauges do not."""

from __future__ import annotations

from kdns.workers import merge_metrics

ONE = """# HELP coredns_dns_requests_total Counter of DNS requests.
# TYPE coredns_dns_requests_total counter
coredns_dns_requests_total{proto="udp",type="A"} 3.0
# HELP kdns_zone_names Names the cluster zone holds.
# TYPE kdns_zone_names gauge
kdns_zone_names 138.0
# HELP kdns_kubernetes_synced 1 once synced.
# TYPE kdns_kubernetes_synced gauge
kdns_kubernetes_synced 1.0
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 100.0
# HELP coredns_dns_request_duration_seconds Histogram of the time each request took.
# TYPE coredns_dns_request_duration_seconds histogram
coredns_dns_request_duration_seconds_bucket{le="0.00025"} 3.0
coredns_dns_request_duration_seconds_bucket{le="+Inf"} 3.0
coredns_dns_request_duration_seconds_count 3.0
coredns_dns_request_duration_seconds_sum 0.0003
"""
TWO = (
    ONE.replace(" 3.0", " 5.0")
    .replace("kdns_kubernetes_synced 1.0", "kdns_kubernetes_synced 0.0")
    .replace("sum 0.0003", "sum 0.0005")
)


def lines(text: bytes) -> set[str]:
    return {line for line in text.decode().splitlines() if line and not line.startswith("#")}


def test_counters_and_histograms_add_up_and_shared_gauges_do_not():
    merged = lines(merge_metrics([ONE, TWO]))
    assert 'coredns_dns_requests_total{proto="udp",type="A"} 8.0' in merged
    assert 'coredns_dns_request_duration_seconds_bucket{le="+Inf"} 8.0' in merged
    assert "coredns_dns_request_duration_seconds_count 8.0" in merged
    assert "kdns_zone_names 138.0" in merged  # the same zone in each worker
    assert "kdns_kubernetes_synced 0.0" in merged  # synced only when every worker is
    # each worker's memory apart: a sum of them would describe no process
    assert 'process_resident_memory_bytes{worker="0"} 100.0' in merged
    assert 'process_resident_memory_bytes{worker="1"} 100.0' in merged
    assert not any(line.startswith("process_resident_memory_bytes ") for line in merged)


def test_a_worker_that_did_not_answer_leaves_the_others_their_numbers():
    merged = lines(merge_metrics(["", ONE]))
    assert 'process_resident_memory_bytes{worker="1"} 100.0' in merged
    assert 'coredns_dns_requests_total{proto="udp",type="A"} 3.0' in merged
