# revoca: `make run` and `make test` install what is missing, then do their job.
# Safe to run again: each step checks before it installs.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
APT_PACKAGES := softhsm2 slapd ldap-utils openssl chromium
PYTEST_ARGS ?=

.PHONY: run test deps system-deps lint bench clean

run: deps
	$(BIN)/revoca run

test: deps
	$(BIN)/ruff check ca ocsp repository tests bench migrations
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

deps: system-deps $(STAMP)

# slapd is preseeded not to configure a system directory of its own: revoca runs its own.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null; then missing="$$missing python3-venv"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root (or install$$missing yourself)"; exit 1; fi; \
	  echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

lint: deps
	$(BIN)/ruff check ca ocsp repository tests bench migrations

clean:
	rm -rf $(VENV) var .pytest_cache
