# nomad-tls-mesh — every target bootstraps what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Three workers on two cores: most of the suite waits on real processes, OpenBao, nginx and
# timers (a clean-clone run used ~0.45 of the two cores at -n 2 and took 12 min); worksteal
# keeps the long end-to-end tests from all landing at the end of one worker's queue.
PYTEST_ARGS ?= -n 3 --dist worksteal

.PHONY: install dev test test-fast test-twins lint fmt clean bench bench-quick chaos

install: $(STAMP) nginx-check prometheus-check graphviz-check

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# nginx (with the stream module) is a real part of the data plane and of the tests.
# promtool checks and unit-tests the alert rules (helm-less-deploy/prometheus); the E2E scrapes
# the controller with a real Prometheus. Debian's prometheus package has both binaries.
.PHONY: prometheus-check
prometheus-check:
	@if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing prometheus (with promtool) with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	else \
	  echo "promtool/prometheus are missing; run: sudo apt-get install -y prometheus" >&2; \
	  exit 1; \
	fi

# Graphviz's dot draws `controllerctl graph --png`; tests/integration/test_graph_cmd.py makes one.
.PHONY: graphviz-check
graphviz-check:
	@if command -v dot >/dev/null 2>&1; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing graphviz (dot) with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz >/dev/null; \
	else \
	  echo "graphviz (dot) is missing; run: sudo apt-get install -y graphviz" >&2; \
	  exit 1; \
	fi

.PHONY: nginx-check
nginx-check:
	@if command -v nginx >/dev/null 2>&1 && ls /usr/lib/nginx/modules/ngx_stream_module.so >/dev/null 2>&1; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing nginx and libnginx-mod-stream with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-stream >/dev/null; \
	else \
	  echo "nginx with the stream module is missing; run: sudo apt-get install -y nginx libnginx-mod-stream" >&2; \
	  exit 1; \
	fi

dev: install
	$(BIN)/controller dev --demo

# Everything: product unit, contract, integration and e2e tests, and the twins' own (testpaths).
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The edit loop: the product's unit tests only (no twins, OpenBao or e2e processes; `nginx -t` and
# the HCL generator are the only subprocesses), the hypothesis properties at a fifth of their
# examples. Under a minute on 2 cores; `make test` runs the full counts.
test-fast: install
	MESH_EXAMPLES_SCALE=0.2 $(BIN)/python -m pytest tests/unit -m "not e2e" -q $(PYTEST_ARGS)

# The twins' own fidelity tests (tests/twins): run these after changing devstack/.
test-twins: install
	$(BIN)/python -m pytest tests/twins -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy controller reconcilers crds_equivalent devstack helm-less-deploy/deploytools
	$(BIN)/lint-imports

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m bench --full

bench-quick: install
	$(BIN)/python -m bench --quick

chaos: install
	$(BIN)/python -m chaos

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# ---- The container image (Containerfile), built with buildah: no daemon, no registry ----
# vfs storage and chroot isolation work as root without overlay, fuse or user namespaces.
# The base the Containerfile names is made from Debian packages when it is not in storage
# (image/debian-base.sh), so the Containerfile stays the one users build with docker/podman.
IMAGE_NAME ?= nomad-tls-mesh
IMAGE_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_BASE := $(shell sed -n 's/^ARG PYTHON_BASE=//p' Containerfile)
BUILDAH := buildah --storage-driver vfs
# The build's RUN steps trust what this machine trusts (a proxy's CA, say): the host's CA bundle
# is bind-mounted over the base's for the build only; it is not part of any layer.
IMAGE_CA ?= /etc/ssl/certs/ca-certificates.crt

.PHONY: image image-base image-tools image-test

# buildah, and debootstrap with Debian's archive keyring for the base: apt-get when root.
image-tools:
	@if command -v buildah >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1 \
	    && [ -e /usr/share/keyrings/debian-archive-keyring.gpg ]; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing buildah, debootstrap and debian-archive-keyring with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    buildah debootstrap debian-archive-keyring >/dev/null; \
	else \
	  echo "buildah and debootstrap are missing; run: sudo apt-get install -y buildah debootstrap debian-archive-keyring" >&2; \
	  exit 1; \
	fi

image-base: image-tools
	image/debian-base.sh $(IMAGE_BASE) --storage-driver vfs

image: image-base
	$(BUILDAH) build --isolation chroot --layers --force-rm --pull=never -f Containerfile \
	  $(if $(wildcard $(IMAGE_CA)),--volume $(IMAGE_CA):/etc/ssl/certs/ca-certificates.crt:ro) \
	  --build-arg VERSION=$(IMAGE_VERSION) \
	  $$(rev=$$(git rev-parse HEAD 2>/dev/null) && echo --label org.opencontainers.image.revision=$$rev) \
	  $$(src=$$(git config --get remote.origin.url 2>/dev/null) && echo --label org.opencontainers.image.source=$$src) \
	  -t $(IMAGE_NAME):$(IMAGE_VERSION) .
	@$(BUILDAH) images --format '{{.Name}}:{{.Tag}} {{.Size}}' $(IMAGE_NAME):$(IMAGE_VERSION)

# Builds the image and runs it against the devstack (tests/e2e/test_container_image.py; `make
# test` runs it too).
image-test: install
	$(BIN)/python -m pytest tests/e2e/test_container_image.py -q -p no:xdist
