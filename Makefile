# firmforge — the commands of a fresh machine. Every target bootstraps .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR := .demo
MIRROR_PORT ?= 8001

.PHONY: test lint demo run bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

lint: $(BIN)/.installed
	$(BIN)/ruff check .

test: lint
	$(BIN)/pytest -n 2

# Offline demo: a synthetic mirror on 127.0.0.1:$(MIRROR_PORT). The build server
# (`firmforge serve` on 127.0.0.1:8000) joins here once it exists (issue 3).
demo: $(BIN)/.installed
	$(BIN)/firmforge mirror generate $(DEMO_DIR)/mirror --base-url http://127.0.0.1:$(MIRROR_PORT)
	$(BIN)/firmforge mirror serve $(DEMO_DIR)/mirror --host 127.0.0.1 --port $(MIRROR_PORT)

# Against the real downloads.openwrt.org: needs `firmforge serve` (issue 3).
run: $(BIN)/.installed
	@echo "firmforge serve is not implemented yet (issue 3); nothing to run against the real mirror." >&2
	@exit 2

bench: $(BIN)/.installed
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
