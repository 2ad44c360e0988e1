# Two commands on a fresh machine: `make test` and `make reports`. Both create .venv/ when missing
# and install the package (editable) with its pinned dependencies from pyproject.toml: the core
# install plus the [notebooks] and [dev] extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PROFILE ?= default
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install lint format test test-browser reports benchmarks smoke data readme-results lab clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[notebooks,dev,scale]"
	touch $(STAMP)

# Ruff (configured in pyproject.toml): lint and check formatting of the package, tests, benchmarks, notebooks.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/python -m pytest

# Notebook 06's explorer in a real browser: JupyterLab on 127.0.0.1 (random port, token), Chromium from the
# Debian package `chromium` driven by Playwright's Python package (never `playwright install`); screenshots
# under reports/browser/. Skips, saying why, without a browser. Not part of `make test` (marker `browser`).
test-browser: $(STAMP)
	$(BIN)/python -m pytest -m browser tests/browser

# Locate (or download) the datasets the default profile needs, before spending time on notebooks.
data: $(STAMP)
	$(BIN)/cbir data fashion_mnist

reports: data
	$(BIN)/cbir reports --profile $(PROFILE)
	$(MAKE) benchmarks
	$(BIN)/cbir reports --update-readme

# Every benchmark at its default size (about 30 minutes on 2 cores), each writing reports/benchmarks.json,
# one at a time so that none times another's load; after the notebooks (bench_search's real set reads
# notebook 02's cached features and head).
benchmarks: $(STAMP)
	$(BIN)/python benchmarks/bench_distances.py
	$(BIN)/python benchmarks/bench_features.py
	$(BIN)/python benchmarks/bench_search.py
	$(BIN)/python benchmarks/bench_indexes.py
	$(BIN)/python benchmarks/bench_extract.py
	$(BIN)/python benchmarks/bench_extract.py

# Every notebook on tiny data in a minute or two, written under reports/smoke/ so that the committed
# default-profile figures and metrics are left alone.
smoke: $(STAMP)
	CBIR_REPORTS_DIR=$(CURDIR)/reports/smoke CBIR_FIGURES_DIR=$(CURDIR)/reports/smoke/figures \
		$(BIN)/cbir reports --profile smoke

readme-results: $(STAMP)
	$(BIN)/cbir reports --update-readme

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf reports/*.ipynb reports/smoke data/cache
