# The two commands of the README: `make run` and `make test`.
# Everything they need is installed here: the virtual environment in .venv,
# and Debian's redis-server / redis-tools for the differential tests and the
# benchmark (reference implementation and load generator).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench bench-structures bench-memory bench-neighbours bench-pubsub bench-scripting bench-dump bench-streams bench-geo bench-sort bench-hll bench-tls bench-replication redis-tools clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tenantkv-server

# redis-server is the reference the compat tests compare against; redis-benchmark
# is the load of `make bench`; prometheus-redis-exporter is scraped against
# tenantkv by tests/test_metrics.py. Installed from Debian when missing.
redis-tools:
	@command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null && \
	  command -v prometheus-redis-exporter >/dev/null || \
	  { (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    redis-server redis-tools prometheus-redis-exporter; }

# Three workers (pytest-xdist) on 2 vCPUs: the suite starts a server per
# module and waits on sockets, timers, child processes and other servers
# (replication, Sentinel) much of the time. On the 2-vCPU VM one worker took
# 10.5 minutes (issue 15's suite); two took 9.5 and three 7 minutes with
# issue 20's suite.
test: $(STAMP) redis-tools
	$(BIN)/python -m pytest -q -n 3

bench: $(STAMP) redis-tools
	$(BIN)/python bench/compare.py

# Lists, sets, hashes and sorted sets under redis-benchmark (issue 4's list).
bench-structures: $(STAMP) redis-tools
	$(BIN)/python bench/compare.py --no-memory \
	  --tests lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100

# Bytes per key by value type and RSS per small tenant (issue 14's table).
bench-memory: $(STAMP) redis-tools
	$(BIN)/python bench/memory.py

# One hostile tenant against another: the victim's latency and the server's
# RSS during each attack of issue 15 (~5-10 minutes on 2 vCPUs).
bench-neighbours: $(STAMP)
	$(BIN)/python bench/neighbours.py

# PUBLISH with 1, 10 and 100 subscribers against redis-server (issue 16).
bench-pubsub: $(STAMP) redis-tools
	$(BIN)/python bench/pubsub.py

# EVALSHA of a small script (GET + INCR), server CPU per call (issue 17).
bench-scripting: $(STAMP) redis-tools
	$(BIN)/python bench/scripting.py

# XADD and XRANGE of 10 entries against redis-server (issue 18); --structure:
# the stream value alone at 1M entries.
bench-streams: $(STAMP) redis-tools
	$(BIN)/python bench/streams.py

# GEOADD and GEOSEARCH (~100 results) against redis-server (issue 18).
bench-geo: $(STAMP) redis-tools
	$(BIN)/python bench/geo.py

# SORT of a 100-element list, numeric and BY/GET, server CPU per call (issue 18).
bench-sort: $(STAMP) redis-tools
	$(BIN)/python bench/sort.py

# PFADD (dense, sparse) and PFCOUNT (cached, two keys) against redis-server (issue 18).
bench-hll: $(STAMP) redis-tools
	$(BIN)/python bench/hll.py

# DUMP / RESTORE of small values against redis-server, server CPU per request (issue 18).
bench-dump: $(STAMP) redis-tools
	$(BIN)/python bench/dump.py

# GET and SET over TLS, pipeline 1 and 16, against redis-server with TLS (issue 19).
bench-tls: $(STAMP) redis-tools
	$(BIN)/python bench/tls.py

# Primary throughput and CPU per request with 0, 1 and 2 replicas, the
# replicas' lag, and the full-sync time of 1M keys, against redis-server
# primaries and replicas (issue 20).
bench-replication: $(STAMP) redis-tools
	$(BIN)/python bench/replication.py

clean:
	rm -rf $(VENV) build src/*.egg-info
