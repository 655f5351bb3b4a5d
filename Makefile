# walt_bench: `make test` and `make demo` work on a fresh machine (they create .venv first).
PYTHON ?= python3
VENV ?= .venv
# Optional extras to install with the package; CI adds the TF-Hub reference I3D: `make test EXTRAS=dev,tfhub`.
# Without `tfhub`, the test that loads a SavedModel through hub.load skips and says why.
EXTRAS ?= dev
BIN := $(VENV)/bin
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: setup test lint format demo clean

setup: $(STAMP)

# CPU torch is pinned for CI (requirements-ci.txt); the package itself declares ranges.
$(STAMP): pyproject.toml requirements-ci.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-ci.txt
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check walt_bench tests
	$(BIN)/ruff format --check walt_bench tests

format: $(STAMP)
	$(BIN)/ruff format walt_bench tests
	$(BIN)/ruff check --fix walt_bench tests

demo: $(STAMP)
	$(BIN)/walt-bench demo

clean:
	rm -rf $(VENV) runs artifacts data/synthetic mlflow.db .pytest_cache
