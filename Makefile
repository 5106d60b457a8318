# revoca: `make run` and `make test` install what is missing, then do their job.
# Safe to run again: each step checks before it installs.

# Debian's own Python 3.11 when there is one: the services run as users of their own (issue 12) and
# must be able to run the interpreter, which a Python under /root (pyenv) does not allow.
SYSTEM_PYTHON := $(shell /usr/bin/python3 -c 'import sys; print(sys.version_info[:2] == (3, 11))' 2>/dev/null)
PYTHON ?= $(if $(filter True,$(SYSTEM_PYTHON)),/usr/bin/python3,python3)
VENV   := .venv
BIN    := $(VENV)/bin
LOCKS  := requirements.lock requirements-dev.lock
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCKS) requirements-uv.lock | sha1sum | cut -c1-12)
UV_INSTALL = $(BIN)/uv pip install --quiet --no-config --python $(BIN)/python
APT_PACKAGES := softhsm2 slapd ldap-utils openssl chromium fonts-ipafont-gothic
PYTEST_ARGS ?=
# One xdist worker more than there are CPUs: a third of each worker's time is waiting (servers
# starting, processes waited for), which the extra one fills; measured on 2 cores, -n 3 ran the
# suite in 215 s where -n 2 took 249 s and -n 4 235 s (each worker also pays its own collection
# and key ceremonies).
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

.PHONY: run test deps system-deps lock lint bench clean

run: deps
	$(BIN)/revoca run

# mypy runs beside the tests, which leave part of the cores idle (servers starting, processes
# waited for): ~10 s less than one after the other. Its report follows the tests'; the
# target fails if either fails.
test: deps
	$(BIN)/ruff check ca ocsp repository tests bench migrations
	@echo "$(BIN)/mypy ca ocsp repository  (beside the tests; its report follows them)"
	@$(BIN)/mypy ca ocsp repository > $(VENV)/mypy.log 2>&1 & typing=$$!; \
	echo "$(BIN)/pytest -n $(PYTEST_WORKERS) --durations=15 $(PYTEST_ARGS)"; \
	$(BIN)/pytest -n $(PYTEST_WORKERS) --durations=15 $(PYTEST_ARGS); tests=$$?; \
	wait $$typing; typed=$$?; echo "mypy ca ocsp repository:"; cat $(VENV)/mypy.log; \
	test $$tests -eq 0 && test $$typed -eq 0

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

# Python packages come from the lock files, never from pyproject.toml's ranges, so that two
# fresh machines install the same bytes. pyproject.toml declares what we are compatible with;
#   requirements-dev.lock  runtime + the dev extra: what `make run` and `make test` install;
#   requirements.lock      runtime only, same versions, for a server: `pip install
#                          --require-hashes -r requirements.lock`, then
#                          `pip install --no-deps --no-build-isolation .`.
# Each pins every package, transitive ones included, for CPython 3.11 on Linux x86_64, with
# the sha256 of every file PyPI serves for that release: --require-hashes (uv's, pip's) refuses
# any other bytes, whichever index or local wheel folder they came from. pip itself and
# setuptools (the build backend, hence --no-build-isolation below) are locked too.
# A venv made before a lock change keeps packages that the lock dropped: `make clean` first
# for an exact one.
# uv installs them (~6 s where pip took ~22 s on 2 cores, a third of a clean clone's `make test`
# outside the tests): pip installs uv itself from requirements-uv.lock, hash-checked as well, and
# uv checks every other file against requirements-dev.lock (--require-hashes), writing their
# bytecode at once (--compile-bytecode: the tests start `revoca` hundreds of times).  uv reads
# neither pip.conf nor its find-links: where it cannot reach its index, pip, which does, installs.
$(STAMP): pyproject.toml $(LOCKS) requirements-uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r requirements-uv.lock
	$(UV_INSTALL) --require-hashes --compile-bytecode -r requirements-dev.lock || \
	  $(BIN)/python -m pip install -q --require-hashes -r requirements-dev.lock
	$(UV_INSTALL) --no-deps --no-build-isolation -e . || \
	  $(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

# `make lock` writes both lock files again from pyproject.toml, resolved against PyPI alone
# (uv reads no pip configuration), keeping every pin that still fits: run it after changing
# the dependencies in pyproject.toml and commit the lock files with it.
#   make lock LOCK_ARGS=--upgrade                          newest releases the ranges allow
#   make lock LOCK_ARGS='--upgrade-package cryptography'   one package (and what it needs)
# uv runs from a throwaway venv; it needs PyPI, nothing of the project's .venv.
UV_VERSION := 0.13.9
LOCK_ARGS  ?=
UV_COMPILE  = "$$tool/bin/uv" pip compile --quiet --no-config --default-index https://pypi.org/simple \
	--python-version 3.11 --python-platform x86_64-unknown-linux-gnu --generate-hashes \
	--custom-compile-command 'make lock' $(LOCK_ARGS)
LOCK_TOOLS := pip 'setuptools>=68'

lock:
	@tool=$$(mktemp -d) && trap 'rm -rf "$$tool"' EXIT && \
	$(PYTHON) -m venv "$$tool" && "$$tool/bin/pip" install -q uv==$(UV_VERSION) && \
	printf '%s\n' $(LOCK_TOOLS) | $(UV_COMPILE) --extra dev pyproject.toml - -o requirements-dev.lock && \
	printf '%s\n' $(LOCK_TOOLS) | $(UV_COMPILE) -c requirements-dev.lock pyproject.toml - -o requirements.lock && \
	printf 'uv==%s\n' $(UV_VERSION) | $(UV_COMPILE) - -o requirements-uv.lock && \
	echo "requirements.lock: $$(grep -c '^[a-z]' requirements.lock) packages," \
	  "requirements-dev.lock: $$(grep -c '^[a-z]' requirements-dev.lock)"

lint: deps
	$(BIN)/ruff check ca ocsp repository tests bench migrations
	$(BIN)/mypy ca ocsp repository

clean:
	rm -rf $(VENV) var .pytest_cache
