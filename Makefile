# kstream: the two commands a new user needs are `make demo` and `make test`.
# Everything they need is installed here (venv, package, control-plane build).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Go builds of the control plane use the machine's Go toolchain, never a download.
export GOTOOLCHAIN ?= local
export GOFLAGS ?= -buildvcs=false
# The kube-apiserver of the control plane (default: the first line of
# `python -m tests.controlplane versions`).
export KSTREAM_KUBE_VERSION

.PHONY: help install controlplane controlplane-compat s3server shells test test-matrix compat lint typecheck unit demo bench bench-seed bench-follow bench-serve bench-instant docs completions clean

help:
	@echo "make demo        set up, start a local control plane, seed it, run kstream on it"
	@echo "make test        set up and run the whole suite (lint, types, unit, control plane),"
	@echo "                 then the compatibility subset on the oldest and newest other kube-apiserver"
	@echo "make test-matrix the compatibility subset on every other kube-apiserver (1.31-1.33 too)"
	@echo "make bench       benchmarks against kubectl and the Python client (docs/benchmarks.md)"
	@echo "make bench-seed  the watch-list blog's experiment: 16 clients x 400 x 1 MB Secrets"
	@echo "make bench-follow dump --follow under steady changes: CPU per event, RSS over time"
	@echo "make bench-serve kstream serve's memory on a 100k-object archive (docs/serve.md)"
	@echo "make bench-instant count JOURNAL/@T from a local S3 server, a week of events,"
	@echo "                 with daily bases and without (docs/benchmarks.md)"
	@echo "make docs        regenerate docs/cli.md;  make completions: completions/*"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Builds etcd and kube-apiserver on first use (several minutes), then reuses
# the binaries cached in ~/.cache/kstream/controlplane/<version>/.
# KSTREAM_KUBE_VERSION picks another version of the matrix (`... versions`).
controlplane: install
	$(PY) -m tests.controlplane build

# The other kube-apiservers `make test` runs the compatibility subset on (about
# 5 minutes each on 2 cores the first time, then cached).
controlplane-compat: install
	for v in $$($(PY) -m tests.controlplane versions --make-test); do \
		$(PY) -m tests.controlplane build --kube-version $$v || exit 1; done

# The S3-compatible server of the object-storage tests (SeaweedFS), built on first
# use (about 11 minutes on 2 cores), then reused from ~/.cache/kstream/s3server/<version>/.
s3server: install
	$(PY) -m tests.s3server build

# bash, zsh, fish and bash-completion for the completion tests (Debian packages;
# skipped when present, or when not root).
shells:
	sh scripts/install-shells.sh

lint: install
	$(VENV)/bin/ruff check kstream tests tools
	$(VENV)/bin/ruff format --check kstream tests tools

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest -m "not cluster"

# The whole suite on the default kube-apiserver, then the compatibility subset
# (pytest -m compat, docs/compatibility.md) on the oldest and the newest other
# version; every run goes to the end, the target fails if any failed.
test: install controlplane controlplane-compat s3server shells lint typecheck
	status=0; $(PY) -m pytest || status=1; \
	for v in $$($(PY) -m tests.controlplane versions --make-test); do \
		echo "== compatibility subset on kube-apiserver $$v"; \
		KSTREAM_KUBE_VERSION=$$v $(PY) -m pytest -m compat || status=1; done; \
	exit $$status

# The compatibility subset on every version of the matrix but the default, and on
# the older releases tried beyond it (1.31 to 1.33; builds each on first use).
test-matrix: install shells
	status=0; for v in $$($(PY) -m tests.controlplane versions --others); do \
		echo "== compatibility subset on kube-apiserver $$v"; \
		$(PY) -m tests.controlplane build --kube-version $$v && \
		KSTREAM_KUBE_VERSION=$$v $(PY) -m pytest -m compat || status=1; done; \
	exit $$status

# One version: make compat KSTREAM_KUBE_VERSION=v1.35.4
compat: install shells
	$(PY) -m tests.controlplane build
	$(PY) -m pytest -m compat

demo: install controlplane
	$(PY) -m tools.demo

# compileall first, so that even the first measured run of a contender starts from
# compiled modules (this machine sets PYTHONDONTWRITEBYTECODE; contenders run without it).
# BENCH_ARGS=--large adds N=100k; BENCH_ARGS=--huge runs only the scale point (100k, then
# 300k, side by side; its own section of docs/benchmarks.md; 30-60 min, several GB of disk).
bench: install controlplane s3server
	$(PY) -m compileall -q kstream
	$(PY) -m tools.bench $(BENCH_ARGS)

# the seed's experiment (16 clients, 400 x 1 MB Secrets, 3 rounds; ~15-30 min)
bench-seed: install controlplane
	$(PY) -m tools.bench_seed $(SEED_ARGS)

# dump --follow under steady changes (10 minutes by default); to object storage (a local
# SeaweedFS): make bench-follow FOLLOW_ARGS="--s3 --rate 200" (add --also-local for the same
# load to a local directory in the same session)
bench-follow: install controlplane s3server
	$(PY) -m compileall -q kstream
	$(PY) -m tools.bench_follow $(FOLLOW_ARGS)

# kstream serve on a 100k-object archive: the server's RSS while kubectl reads it.
bench-serve: install
	$(PY) -m compileall -q kstream
	$(PY) -m tools.bench_serve $(BENCH_ARGS)

# `count s3://.../@T` on a journal of 100k objects and 1M events over 7 days, with the
# daily bases of --rebase-every 24h and without (INSTANT_ARGS="--events 100000" is quicker)
bench-instant: install s3server
	$(PY) -m compileall -q kstream
	$(PY) -m tools.bench_instant $(INSTANT_ARGS)

docs: install
	$(PY) -m tools.gendocs

completions: install
	$(PY) -m tools.gencompletions

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache demo-out bench-out
