# Two entry points on a fresh machine: `make demo` and `make test`.
# Both create .venv, install labcap with its extras and the JupyterHub proxy.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CHP := $(VENV)/lib/node/node_modules/.bin/configurable-http-proxy

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed $(CHP)

$(VENV)/.installed: pyproject.toml
	@scripts/bootstrap.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,dev]'
	touch $@

$(CHP):
	@scripts/bootstrap.sh
	npm install --silent --no-audit --no-fund --prefix $(VENV)/lib/node configurable-http-proxy@5

demo: install
	$(VENV)/bin/labcap demo

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

test: lint
	$(VENV)/bin/pytest -q -rs

bench: install
	$(PY) bench/memory_flat.py

# Docker figures: phase agreement with engine timestamps, sampler CPU, spawn storms.
# Each starts a private dockerd (root) unless DOCKER_HOST is set.
.PHONY: bench-docker
bench-docker: install
	@scripts/bootstrap.sh
	$(PY) bench/docker_phase_agreement.py
	$(PY) bench/docker_overhead.py
	$(PY) bench/docker_storm.py

# The k8s tests' real Kubernetes 1.20 (root; built once into /var/cache/labcap-k8s, then
# ~20 s). `make test` needs neither: the k8s_cluster fixture brings it up and down itself.
.PHONY: k8s-up k8s-down
k8s-up:
	scripts/test-cluster up
k8s-down:
	scripts/test-cluster down

# GPU tests (real NVML) + sampler overhead, on a machine with an NVIDIA GPU; exits 2 without one.
.PHONY: gpu-check
gpu-check:
	bash scripts/gpu-check.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
