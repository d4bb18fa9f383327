# paybot developer commands. On a fresh clone `make run` and `make test` need only Python 3.10:
# they create .venv, install the pinned dependencies (again only when pyproject.toml or
# constraints.txt change) and train the Rasa model when bot/ or nlu_data/ changed.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        := .venv
PYTHON      := $(VENV)/bin/python
PAYBOT      := $(VENV)/bin/paybot
INSTALLED   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help run test lint train clean model espeak chromium haproxy

help: ## list the targets
	@echo "usage: make TARGET"
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-z][a-zA-Z_-]*:.*## / {printf "  %-7s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: model ## start Rasa, the action server and the voice bridge (Ctrl-C stops all three)
	$(PAYBOT) up

# Three workers on two cores, each test module on one of them: the voice modules wait on
# real-time audio most of the time (the machine was two-thirds busy on average with three);
# PYTEST_ARGS='-n 0' runs them in this process.
test: model espeak chromium haproxy ## run the tests; pass pytest options with PYTEST_ARGS='-x -k ledger'
	$(PYTHON) -m pytest -n 3 --dist loadfile $(PYTEST_ARGS)

lint: $(INSTALLED) ## check the code (ruff, the import contracts) and the bot's training data
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	RASA_TELEMETRY_ENABLED=false $(PYTHON) -m rasa data validate --fail-on-warnings \
		--domain bot/domain.yml --data bot/data nlu_data --config bot/config.yml

train: $(INSTALLED) ## train the Rasa model now (bot/ + nlu_data/ -> models/paybot.tar.gz)
	$(PAYBOT) train

clean: ## delete the trained model, Rasa's cache and Python caches (keeps .venv and var/)
	rm -rf models/paybot.tar.gz models/.fingerprint models/.rasa-cache .rasa \
		.pytest_cache .ruff_cache .import_linter_cache build
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

# Debian packages the tests need: installed with apt-get when missing and we may (root, or
# passwordless sudo); otherwise say how. $(1) the command, $(2) the package, $(3) what for.
define apt-install
@command -v $(1) >/dev/null 2>&1 || [ -x /usr/sbin/$(1) ] || { \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			echo "installing $(2) ($(3))"; \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				$(2) >/dev/null; } || echo "make: could not install $(2)" >&2; \
		elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
			sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install \
				-y -qq $(2) >/dev/null || echo "make: could not install $(2)" >&2; \
		else \
			echo "make: $(2) is missing; $(3) needs it (sudo apt-get install $(2))" >&2; \
		fi; }
endef

# The simulated caller's voice (`paybot call`, the voice tests): Debian's espeak-ng.
espeak:
	$(call apt-install,espeak-ng,espeak-ng,the simulated caller's voice)

# The load balancer in front of several bridges (tests/test_workers.py, tests/test_deploy.py).
haproxy:
	$(call apt-install,haproxy,haproxy,the several-workers test)

# The browser of the browser tests (pay links, the console): Debian's Chromium, driven by the
# playwright package (never `playwright install`: it would download its own browser).
chromium:
	$(call apt-install,chromium,chromium,the browser tests)

# Train only when the files under bot/ or nlu_data/ changed since the last model.
model: $(INSTALLED)
	$(PAYBOT) train --if-changed

$(INSTALLED): pyproject.toml constraints.txt | $(PYTHON)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' || { \
		echo "make: $(VENV) is not Python 3.10; delete it ('rm -rf $(VENV)') and retry" >&2; \
		exit 1; }
	$(PYTHON) -m pip install --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

# python3.10 from PATH (pyenv's shim reads .python-version), else the newest 3.10 that
# pyenv has installed even when its shim cannot resolve.
$(PYTHON):
	@py=""; \
	if python3.10 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; \
	then py=python3.10; \
	else \
		root=$$(pyenv root 2>/dev/null || echo "$${PYENV_ROOT:-$$HOME/.pyenv}"); \
		py=$$(ls -d "$$root"/versions/3.10.*/bin/python3.10 2>/dev/null | sort -V | tail -n 1 \
			|| true); \
	fi; \
	if [ -z "$$py" ]; then \
		echo "make: paybot needs Python 3.10 and none was found; install it" \
			"(e.g. 'pyenv install 3.10') and retry" >&2; \
		exit 1; \
	fi; \
	echo "creating $(VENV) with $$py"; \
	"$$py" -m venv $(VENV) || { rm -rf $(VENV); exit 1; }
