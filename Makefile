# Set-up and everyday commands. Each target installs what it needs on a fresh machine.
VENV    ?= .venv
PYTHON  ?= python3
STAMP   := $(VENV)/.installed
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARGS    ?=

.PHONY: serve test lint bench soak dump clean tools-test tools-bench tools-cluster compare

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

# dig is the second independent DNS client of the end-to-end tests; Prometheus scrapes kdns to try
# CoreDNS's dashboards and alerts on it (tests/test_dashboards.py).
tools-test:
	@command -v dig >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq bind9-dnsutils; }
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends prometheus; }

# dnsperf drives the benchmarks; Knot DNS is the compiled reference server.
tools-bench: tools-test
	@command -v dnsperf >/dev/null && command -v knotd >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dnsperf knot; }

# etcd, kube-apiserver and kube-controller-manager for the real-cluster tests, and CoreDNS for the
# comparisons, built from the Go module proxy at the versions in tests/cluster/go.mod and
# tests/coredns/go.mod into ~/.cache/kdns-cluster/ (once per version).
tools-cluster:
	@tests/cluster/build.sh >/dev/null
	@tests/cluster/build.sh coredns >/dev/null

serve: $(STAMP)
	$(VENV)/bin/kdns serve $(ARGS)

dump: $(STAMP)
	$(VENV)/bin/kdns dump $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check kdns tests bench
	$(VENV)/bin/ruff format --check kdns tests bench
	$(VENV)/bin/lint-imports

test: $(STAMP) tools-test tools-cluster lint
	$(VENV)/bin/pytest $(ARGS)

bench: $(STAMP) tools-bench tools-cluster
	$(VENV)/bin/python -m bench.run $(ARGS)
	$(VENV)/bin/python -m bench.forwarded $(ARGS)
	$(VENV)/bin/python -m bench.workers $(ARGS)
	$(VENV)/bin/python -m bench.informer $(ARGS)
	$(VENV)/bin/python -m bench.real_api $(ARGS)
	$(VENV)/bin/python -m bench.versus $(ARGS)
	$(VENV)/bin/python -m bench.abuse $(ARGS)

# CoreDNS beside kdns on one real API server: every question asked of both, the differences by kind,
# and how soon each reflects a change (bench/compare.py; the report in bench/out/compare/).
compare: $(STAMP) tools-cluster
	$(VENV)/bin/python -m bench.compare $(ARGS)

# Ten minutes at 80% of kdns's capacity on cluster, forwarded and TCP queries (bench/soak.py).
soak: $(STAMP) tools-bench
	$(VENV)/bin/python -m bench.soak $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache bench/out

# A million generated packets and coverage-guided raw bytes through the packet path (bench/fuzz.py).
.PHONY: fuzz
fuzz: $(STAMP)
	$(VENV)/bin/pip install -q atheris
	$(VENV)/bin/python -m bench.fuzz --packets 1000000 --atheris-runs 500000 $(ARGS)
