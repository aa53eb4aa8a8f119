# The two commands of the README are `make run` and `make test`; everything else is a step of them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv compile lint test test-fast kafka-up kafka-down kafka-status run bench bench-replay bench-live bench-state faults clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The rules core compiled with mypyc (streams/compile_core.py), again whenever a source it
# depends on changed; without a C compiler the sources run, slower.
compile: venv
	$(PY) -m streams.compile_core --if-needed

lint: venv
	$(VENV)/bin/ruff check streams tests
	$(VENV)/bin/ruff format --check streams tests
	$(VENV)/bin/mypy streams

# The session fixture starts the test broker (KAFKA_TEST_PORT, default 19092) and stops it.
test: lint compile
	$(PY) -m pytest

test-fast: compile
	$(PY) -m pytest tests/unit

# `make kafka-up KAFKA_UP_ARGS="--secure --fresh"` adds the SASL_SSL listener (README).
kafka-up: venv
	$(PY) -m streams kafka up $(KAFKA_UP_ARGS)

kafka-down: venv
	$(PY) -m streams kafka down

kafka-status: venv
	$(PY) -m streams kafka status

# Local broker + worker + demo stream; Ctrl-C stops all three.
run: compile
	$(PY) -m streams run

# Speed figures, never asserted by tests (see docs/benchmarks.md).
bench: compile
	$(PY) -m benchmarks.replay_core

# Replay from Kafka against read+decode alone, on the local broker.
bench-replay: compile kafka-up
	$(PY) -m benchmarks.replay_kafka

# The live worker draining a backlog against a raw aiokafka reader, one and two workers,
# latency, and the tables at a million leads (about 20 minutes in all).
BENCH_LIVE_ARGS ?= --events 100000 --state-leads 1000000 --json bench-live.json
bench-live: compile kafka-up
	$(PY) -m benchmarks.live $(BENCH_LIVE_ARGS)

# The tables at 1,000,000 leads: RSS, RocksDB on disk, restore and kill -9 restart times.
BENCH_STATE_ARGS ?= --leads 1000000 --json bench-state.json
bench-state: compile kafka-up
	$(PY) -m benchmarks.state $(BENCH_STATE_ARGS)

# The fault harness, long run: workers killed with SIGKILL, a second worker, the broker killed
# and restarted, hostile input; a bounded run is part of `make test` (tests/e2e/test_faults.py).
FAULTS_ARGS ?= --events 20000 --kills 12 --feed-seconds 120 --json faults-report.json
faults: compile kafka-up
	$(PY) -m streams faults $(FAULTS_ARGS)

clean:
	test ! -x $(PY) || $(PY) -m streams.compile_core --clean
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
