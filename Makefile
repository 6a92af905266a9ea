# One command to set up and run each main job on a fresh machine:
#   make quickstart   # virtualenv + install + the whole pipeline on MovieLens-100K
#   make test         # virtualenv + install + the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel pinned here matches the machines this project is developed on;
# users with a GPU can run e.g. `make setup TORCH="torch"` to keep their CUDA build.
TORCH ?= torch==2.13.0
# The library versions the committed results were produced with (see constraints.txt).
CONSTRAINTS ?= constraints.txt

.PHONY: setup browser quickstart test lint format benchmark clean

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

quickstart: setup
	$(BIN)/gensar quickstart

# The demo page's browser test drives a real Chromium. Install Debian's package when it
# is missing and we can (root with apt-get, as on CI); otherwise say why that test skips.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
	  true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium for the browser test (apt-get) ..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "warning: apt-get could not install chromium: the browser test will skip"; \
	else \
	  echo "note: chromium is missing and cannot be installed here (not root, or no apt-get): the browser test will skip"; \
	fi

test: setup browser
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: setup
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
