"""What the benchmark commands share. Each command sets up servers, measures and reports with these:

- ``harness``: one benchmark at a time, its time limit, ``results.json``, where its README goes;
  ``options``: the command line the commands share;
- ``processes``: children pinned to CPUs, and their CPU time and memory from /proc; ``host``: the
  machine and versions a report states;
- ``servers``: a server under test (process, port, log), waiting until it answers, Knot DNS and the
  Python references; ``kdns``: the one way to start kdns, and its log; ``metrics``: its /metrics;
- ``dnsperf``: the load and its output; ``measure``: a dnsperf run with the CPU it cost, and the
  medians over repeats; ``compare``: answers of two servers side by side; ``profiling``: py-spy and
  perf;
- ``stats``: percentiles, medians, ratios; ``tables``: markdown tables and formats for bench/README.md.
"""
