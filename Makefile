# Two commands on a fresh machine: `make demo` and `make test`. Each bootstraps .venv by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test imports lint bench venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,test,bench]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/edgeproof rehearse

test: $(STAMP) imports
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# The import contracts (pyproject.toml [tool.importlinter]) checked on the package as a wheel installs it:
# the folders map into edgeproof.* only there (setuptools package-dir)
imports: $(STAMP)
	rm -rf build
	$(BIN)/python -m pip install -q --no-deps --target build/wheel-tree .
	cd build/wheel-tree && PYTHONPATH=. ../../$(BIN)/lint-imports ../../pyproject.toml

bench: $(STAMP)
	$(BIN)/python benchmarks/logs_bench.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
