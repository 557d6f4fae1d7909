# gridmap — every target installs what is missing first (OS packages, uv, the Python env).
SHELL := /bin/bash
.DEFAULT_GOAL := run
export UV_PYTHON_DOWNLOADS := never

UV = $(shell scripts/ensure-uv.sh)
GRIDMAP = .venv/bin/gridmap

.PHONY: run test bench lint format deps system system-test clean

system:
	@scripts/ensure-system.sh

system-test:
	@scripts/ensure-system.sh --browser

deps:
	@$(UV) sync --frozen --quiet

## make run: set up everything, start the embedded PostGIS, load the demo, serve on :8000
run: system deps
	@$(GRIDMAP) setup
	@$(GRIDMAP) serve

## make test: the same set-up, then the whole suite (gis unit, PostGIS integration, browser)
test: system-test deps
	@.venv/bin/python -m pytest $(PYTEST_ARGS)

## make bench: benchmarks (each prints gridmap's figure beside its peer's)
bench: system deps
	@for b in bench/bench_*.py; do .venv/bin/python "$$b" || exit 1; done

lint: deps
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .

format: deps
	@.venv/bin/ruff format .
	@.venv/bin/ruff check --fix .

clean:
	-@[ -x $(GRIDMAP) ] && $(GRIDMAP) db down
	rm -rf var .venv .pytest_cache .ruff_cache
