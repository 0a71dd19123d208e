# Two commands do all set-up: `make run` (daemon on embedded defaults) and `make test` (whole suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml setup.py | $(BIN)/python
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

# The rooms ship as pulse.core, pulse.ports, ... (setup.py maps them); mypy and import-linter
# read files, not the editable install's import hook, so they are shown that layout as links.
LINT_TREE := $(VENV)/lint-tree
$(LINT_TREE)/pulse: | $(BIN)/python
	mkdir -p $@
	for room in core ports adapters_in adapters_out bootstrap; do ln -sfn $(CURDIR)/$$room $@/$$room; done

lint: $(VENV)/.installed-test $(VENV)/.promtool $(LINT_TREE)/pulse
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MYPYPATH=$(LINT_TREE) $(BIN)/mypy
	PYTHONPATH=$(LINT_TREE) $(BIN)/lint-imports
	$(BIN)/python .ci/complexity.py
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml
	$(BIN)/hadolint Dockerfile

test: lint $(VENV)/.chromium
	$(BIN)/pytest -q -p no:cacheprovider -n 4 --dist worksteal

# requirements.lock: what the Docker image installs, every package pinned with its hashes, the
# build backend included (the image builds Pulse without build isolation), and the `lambda`
# extra (the runtime interface client of the image's Lambda target). Run after changing
# dependencies in pyproject.toml; tests/unit/test_packaging.py checks the two agree.
lock: $(VENV)/.installed-test
	$(BIN)/pip install --quiet 'uv>=0.5'
	printf 'setuptools>=77\nwheel\n' | $(BIN)/uv pip compile --quiet pyproject.toml - --extra lambda \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
		--no-header --output-file requirements.lock

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
