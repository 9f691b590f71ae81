# The two commands of the README: `make demo` and `make test`. Both create .venv when it is
# missing and install nishard with every dependency pinned by constraints.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint format clean git-annex

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "nishard needs Python 3.11+: set PYTHON=python3.11")'
	@command -v git-annex >/dev/null || $(MAKE) --no-print-directory git-annex
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[torch,jax,dev]" 2>&1 | grep -v "is ignored: it is neither" || true
	@$(BIN)/python -c 'import nishard, torch, jax, webdataset' && touch $@

# DataLad sources need git-annex, a Debian package; the DataLad tests skip without it.
git-annex:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq git-annex >/dev/null; \
	elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq git-annex >/dev/null; \
	else echo "note: install git-annex (apt-get install git-annex) for DataLad sources"; fi

demo: setup
	$(BIN)/nishard demo

test: setup lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff format --check src tests benchmarks

format: setup
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) nishard-demo .pytest_cache
