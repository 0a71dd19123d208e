# Two commands do all set-up: `make run` (daemon on embedded defaults) and `make test` (whole suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-run

# .env with fresh random webhook secrets, written once, readable by its owner only (0600): the
# daemon refuses to start without them. CRM_FILE: the sample CRM that knows the README's HubSpot
# email and ticket (samples/).
.env:
	@$(BIN)/python -c "import os, secrets; fd = os.open('.env', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600); os.fchmod(fd, 0o600); os.write(fd, ('ALOWARE_SECRET=' + secrets.token_urlsafe(24) + '\nHUBSPOT_CLIENT_SECRET=' + secrets.token_urlsafe(24) + '\nCRM_FILE=samples/crm.json\n').encode())"
	@echo "wrote .env with new ALOWARE_SECRET and HUBSPOT_CLIENT_SECRET, and CRM_FILE=samples/crm.json"

run: $(VENV)/.installed-run .env
	$(BIN)/pulse serve

# promtool (Debian's prometheus package) checks the alert rules here and the /metrics page in
# the tests; installed once if missing (sudo when not root).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(VENV)/.promtool: | $(BIN)/python
	@command -v promtool >/dev/null || $(SUDO) apt-get install -y --no-install-recommends prometheus >/dev/null \
		|| ($(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y --no-install-recommends prometheus >/dev/null)
	@promtool --version | head -1
	touch $@

# Debian's chromium and chromium-driver: the console's browser test drives them (headless,
# 127.0.0.1 only); installed once if missing, like promtool.
$(VENV)/.chromium: | $(BIN)/python
	@(command -v chromium && command -v chromedriver) >/dev/null \
		|| $(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null \
		|| ($(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null)
	@chromedriver --version | head -1
	touch $@

lint: $(VENV)/.installed-test $(VENV)/.promtool
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python .ci/complexity.py
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml

test: lint $(VENV)/.chromium
	$(BIN)/pytest -q -p no:cacheprovider -n 4 --dist worksteal

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
