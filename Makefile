# make test: lint, types and the whole suite against real Redis and Temporal.
# make test-reliability: the reliability cases kept out of make test (each waits out a 15 s
#   heartbeat timeout after killing a worker); .ci/run runs both.
# make demo [SCENARIO=down|oom|full|crashloop|failover|list] [ARGS=...]: the sandbox cluster with a real Redis
#   and traffic, Temporal with its Web UI, worker, webhook and (where installed) redis_exporter,
#   Prometheus and Alertmanager; the failure injected, the alert opens the incident, followed
#   live to its review. Ctrl-C stops every process it started. SCENARIO=list lists them;
#   ARGS=--exit-when-done exits by itself after the review, ARGS='--approve-as NAME' approves.
# Both set themselves up: .venv with the project and its test tools, redis-server if missing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=
SCENARIO ?= down

.PHONY: test test-reliability demo setup lint typecheck pytest record-histories bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,sandbox]'
	touch $(STAMP)

setup: $(STAMP)
	@scripts/ensure-system-deps.sh
	@$(BIN)/python scripts/ensure-kubectl.py $(BIN)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

# Two processes, one test file each at a time: most tests wait on real servers, not the CPU.
pytest: setup
	$(BIN)/pytest -m "not slow" -n 2 --dist loadfile

test: lint typecheck pytest

test-reliability: setup
	$(BIN)/pytest -m slow tests/reliability

demo: setup
	$(BIN)/python -m demo --scenario $(SCENARIO) $(ARGS)

bench: setup
	$(BIN)/python -m bench.triage
	$(BIN)/python -m bench.concurrency
	$(BIN)/python -m bench.mitigation
	$(BIN)/python -m bench.alert_storm --order interleaved
	$(BIN)/python -m bench.alert_storm --order interleaved --rate 500

record-histories: setup
	$(BIN)/python -m tests.record_histories $(CASES)

clean:
	rm -rf $(VENV) .runbook .pytest_cache .mypy_cache .ruff_cache *.egg-info
