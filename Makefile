# firmforge — the commands of a fresh machine. Every target bootstraps .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR := .demo
MIRROR_PORT ?= 8001
FEED_PORT ?= 8002
# The pages' chart library: fetched from the npm registry, pinned and integrity-checked.
VENDOR := firmforge/web/static/vendor/.installed.json

.PHONY: test lint demo run bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(VENDOR): $(BIN)/.installed firmforge/web/vendor.py
	$(BIN)/python -m firmforge.web.vendor
	touch $@

lint: $(BIN)/.installed
	$(BIN)/ruff check .

test: lint $(VENDOR)
	$(BIN)/pytest -n 2

# Offline demo: the synthetic mirror on 127.0.0.1:$(MIRROR_PORT), the LibreMesh feed host on
# 127.0.0.1:$(FEED_PORT) and the build server on 127.0.0.1:8000 offering OpenWrt and
# LibreMesh. The ImageBuilders name the official mirror, as real ones do; the server rewrites
# that to the local one. `make clean` starts it afresh.
DEMO_DISTRIBUTIONS = [{"name": "libremesh", "title": "LibreMesh", \
	"upstream_url": "http://127.0.0.1:$(FEED_PORT)", "keys": ["$(DEMO_DIR)/libremesh.pub"], \
	"feeds": {"libremesh": "master/openwrt-{branch}/{arch}", \
	"libremesh_profiles": "profiles/openwrt-{branch}/{arch}"}, \
	"packages": ["lime-system", "lime-proto-babeld", "lime-proto-batadv", "lime-proto-anygw", \
	"lime-hwd-openwrt-wan", "lime-app", "shared-state", "-dnsmasq", "-odhcpd-ipv6only"]}]
demo: $(BIN)/.installed $(VENDOR)
	test -f $(DEMO_DIR)/mirror/.versions.json || $(BIN)/firmforge mirror generate $(DEMO_DIR)/mirror
	test -f $(DEMO_DIR)/libremesh.pub || \
		$(BIN)/firmforge mirror generate $(DEMO_DIR)/libremesh --flavour libremesh
	$(BIN)/firmforge mirror serve $(DEMO_DIR)/mirror --port $(MIRROR_PORT) & mirror=$$!; \
	$(BIN)/firmforge mirror serve $(DEMO_DIR)/libremesh --port $(FEED_PORT) & feed=$$!; \
	trap 'kill $$mirror $$feed' EXIT INT TERM; \
	FIRMFORGE_DISTRIBUTIONS='$(DEMO_DISTRIBUTIONS)' \
	$(BIN)/firmforge serve --host 127.0.0.1 --port 8000 --data-dir $(DEMO_DIR)/data \
		--upstream-url http://127.0.0.1:$(MIRROR_PORT) --upstream-key $(DEMO_DIR)/mirror.pub

# The same against the real downloads.openwrt.org (needs the internet). Pass trusted keys with
# FIRMFORGE_UPSTREAM_KEY='["/path/key.pub"]' to have the mirror's signatures checked.
run: $(BIN)/.installed $(VENDOR)
	$(BIN)/firmforge serve --host 127.0.0.1 --port 8000 --data-dir .run-data \
		--upstream-url https://downloads.openwrt.org

bench: $(BIN)/.installed
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) $(DEMO_DIR) .run-data .pytest_cache .ruff_cache
