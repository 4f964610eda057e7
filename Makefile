# cryoweave: `make demo` runs the main job end to end, `make test` runs the whole test suite.
# Both create .venv when it is missing and install cryoweave into it.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: pyproject.toml | $(PY)
	$(PIP) install -e .
	@touch $@

$(VENV)/.test: pyproject.toml | $(PY)
	$(PIP) install -e '.[test]'
	@touch $@ $(VENV)/.runtime

demo: $(VENV)/.runtime
	$(PY) -m cryoweave.demo

test: $(VENV)/.test
	$(VENV)/bin/ruff check src tests benchmarks
	bash scripts/test-services.sh
	$(PY) -m pytest

lint: $(VENV)/.test
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(VENV)/.test
	$(PY) benchmarks/bench_dataset.py
	$(PY) benchmarks/bench_builder.py --keep 1.0 --out bench-output/chain
	$(PY) benchmarks/bench_builder.py --keep 0.9 --out bench-output/chain-with-selection
	$(PY) benchmarks/bench_scheduler.py --out bench-output
	$(PY) benchmarks/bench_import.py --out bench-output/import
	$(PY) benchmarks/bench_duplicates.py --out bench-output/duplicates
	$(PY) benchmarks/bench_downsample.py --out bench-output/downsample
	bash scripts/cryodrgn-venv.sh .venv-cryodrgn
	$(PY) benchmarks/bench_reconstruct.py --cryodrgn-python .venv-cryodrgn/bin/python --out bench-output
	bash scripts/test-services.sh
	$(PY) benchmarks/bench_store.py
	$(PY) benchmarks/bench_storage.py --out bench-output/storage
	$(PY) benchmarks/bench_export.py --out bench-output/export
	$(PY) benchmarks/bench_check.py --out bench-output/check
	$(PY) benchmarks/bench_server.py --out bench-output/server

clean:
	rm -rf $(VENV) .venv-cryodrgn build src/*.egg-info .pytest_cache .ruff_cache .hypothesis demo-output \
		dataset-demo bench-output
