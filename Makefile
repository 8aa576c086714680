# dpdkvirtio: the two commands of the README.
#   make demo   set up this host, build, and pump packets vhost-user <-> virtio-user
#   make test   set up this host, build, and run the whole test suite
#   make bench  the standard benchmark set side by side with dpdk-testpmd (and OVS-DPDK)
#   make docs   the API reference and guides (Sphinx) in build/docs
#   make fuzz HOURS=N  the hostile-guest fuzz for N hours from a fresh seed
#   make image-test  install the container engine and debootstrap, build the perf-CI image,
#               run the demo in it, stop the engine it started (tests/image; CI runs it
#               after make test)
# Both are idempotent. Extra arguments: make demo ARGS="--seconds 5 --json",
# make test PYTEST_ARGS="-k vhost", make test ALLOW_SKIPS=1 (skipped tests do not fail the run).
SHELL := /bin/bash
PYTHON ?= python3
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)

.PHONY: demo test image-test fuzz bench docs notebook image host image-host build clean

demo: build
	$(PY) -m dpdkvirtio demo $(ARGS)

# A skipped test fails the run (a missing peer is a set-up failure); ALLOW_SKIPS=1 accepts skips.
# The suite's wall time is printed last, whatever the result.
test: build
	@start=$$(date +%s); rc=0; \
	ALLOW_SKIPS=$(ALLOW_SKIPS) $(PY) -m pytest tests --ignore=tests/image $(PYTEST_ARGS) || rc=$$?; \
	echo "make test: pytest exit $$rc, wall time $$(( $$(date +%s) - start )) s"; exit $$rc

# The image is 2 GB and minutes to build: its own target, not part of make test.
image-test: build image-host
	@start=$$(date +%s); rc=0; \
	ALLOW_SKIPS=$(ALLOW_SKIPS) $(PY) -m pytest tests/image $(PYTEST_ARGS) || rc=$$?; \
	echo "make image-test: pytest exit $$rc, wall time $$(( $$(date +%s) - start )) s"; exit $$rc

# The long hostile-guest campaign: fresh seed, cases for HOURS hours (printed seed and
# case replay as in make test). make fuzz HOURS=8; a seed again: PYTEST_ARGS=--hostile-seed=S
HOURS ?= 1
fuzz: build
	$(PY) -m pytest tests/reliability/test_hostile.py -k hostile_guests -s \
	    --hostile-seconds=$$(( $(HOURS) * 3600 )) $(PYTEST_ARGS)

bench: build
	mkdir -p perf/results
	$(PY) -m perf run --trials 5 --seconds 3 --json perf/results/latest.json $(ARGS)

# The API reference and guides (Sphinx; warnings are errors): build/docs/index.html
docs: build
	$(PY) -m sphinx -W --keep-going -b html docs build/docs
	@echo "docs: build/docs/index.html"

# The perf-CI image (docker/Dockerfile); its own Debian base when no registry answers.
# Then: scripts/image.sh demo, or scripts/image.sh run make bench (docker/README.md).
image: host image-host
	scripts/image.sh build

# Re-execute the example notebook in place (its stored outputs are what a code host shows).
notebook: build
	$(PY) -c "import nbformat, nbclient; p = 'examples/affinity_tuning.ipynb'; \
	nb = nbformat.read(p, 4); nbclient.NotebookClient(nb, timeout=900, kernel_name='python3', \
	resources={'metadata': {'path': '.'}}).execute(); nbformat.write(nb, p)"

host:
	scripts/setup-host.sh all

image-host:
	scripts/setup-host.sh image

build: host $(VENV)/.installed

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps: requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# Editable meson-python install: later imports rebuild changed Cython modules by
# themselves (incrementally, in build/).
$(VENV)/.installed: $(VENV)/.deps pyproject.toml meson.build
	CYTHON=$(VENV)/bin/cython $(PY) -m pip install -q --no-build-isolation \
	    -Cbuild-dir=build -e .
	touch $@

clean:
	rm -rf build $(VENV) .pytest_cache
