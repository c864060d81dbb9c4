# arcwi.workload_identity: developer entry points.
#   make demo   install everything, start the sandbox, run the site playbook, print the proof
#   make test   ansible-test sanity, unit tests, sandbox tests
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-$(shell cat requirements-dev.txt requirements.txt constraints.txt | sha256sum | cut -c1-12)
NODE_STAMP := sandbox/node_modules/.stamp-$(shell sha256sum sandbox/package-lock.json | cut -c1-12)

.PHONY: setup sandbox-up sandbox-down sandbox-reset sandbox-status demo test test-sanity test-unit test-sandbox docs lint bench clean

setup: $(STAMP) $(NODE_STAMP) .cache/collections/ansible_collections/arcwi/workload_identity sandbox-docker \
	sandbox-k8s-build sandbox-node-images
	@echo "setup: done"

# ansible.cfg points collections_path here: playbooks in this checkout use this checkout's collection
.cache/collections/ansible_collections/arcwi/workload_identity:
	@mkdir -p $(@D) && ln -sfn ../../../.. $@

$(STAMP): requirements-dev.txt requirements.txt constraints.txt
	@start=$$(date +%s); \
	test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	$(PY) -m pip install --quiet --upgrade pip; \
	$(PY) -m pip install --quiet -r requirements-dev.txt; \
	rm -f $(VENV)/.stamp-*; touch $@; \
	echo "setup: python dev requirements installed in $$(( $$(date +%s) - start ))s"

$(NODE_STAMP): sandbox/package.json sandbox/package-lock.json
	@start=$$(date +%s); \
	(cd sandbox && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error); \
	touch $@; \
	echo "setup: sandbox node packages installed in $$(( $$(date +%s) - start ))s"

# the sandbox's upstream Go components (sandbox/go/README.md): built once per version into
# ${XDG_CACHE_HOME:-~/.cache}/arcwi-sandbox/bin, reused after that
# etcd, Kubernetes, kwok, the webhook and helm from their Go modules (sandbox/go/): builds what is
# missing into a cache outside the repository and says how long each took (about 20 min cold on
# 2 cores, well under a second when everything is cached)
.PHONY: sandbox-k8s-build
sandbox-k8s-build:
	@start=$$(date +%s); $(PYTHON) sandbox/go/build.py; \
	echo "setup: sandbox Go components ready in $$(( $$(date +%s) - start ))s"

# Docker Engine: the user's own when it answers, else Debian's docker.io (installed here only when missing)
# run by the sandbox as its own daemon (sandbox/docker_engine.py); debootstrap (also installed when missing)
# builds the node images' root
.PHONY: sandbox-docker sandbox-node-images
sandbox-docker:
	@$(PYTHON) -m sandbox.docker_engine install

# kind node images for Kubernetes v1.37.2 and v1.35.4, built offline into Docker (sandbox/nodeimage): a
# no-op when the images of the current recipe are there
sandbox-node-images: sandbox-docker sandbox-k8s-build
	@start=$$(date +%s); $(PYTHON) -m sandbox.docker_engine up; \
	set -a; eval "$$($(PYTHON) -m sandbox.docker_engine env)"; set +a; \
	$(PYTHON) -m sandbox.nodeimage build; \
	echo "setup: sandbox node images ready in $$(( $$(date +%s) - start ))s"

sandbox-up: setup
	$(PY) -m sandbox up

sandbox-down:
	@if [ -x $(PY) ]; then $(PY) -m sandbox down --docker; else $(PYTHON) -m sandbox.docker_engine down; fi

sandbox-reset: setup
	$(PY) -m sandbox reset

sandbox-status: setup
	$(PY) -m sandbox status

# site.yml with the sandbox's variables exported (set -a: every assignment the eval makes is exported);
# DEMO_ARGS passes more ansible-playbook arguments, e.g. DEMO_ARGS="-e oidc_issuer_key_dir=/tmp/keys"
demo: sandbox-up
	@set -a; eval "$$($(PY) -m sandbox env)"; set +a; \
	$(PY) -m sandbox demo -- $(DEMO_ARGS) && \
	$(VENV)/bin/ansible-playbook playbooks/verify.yml $(DEMO_ARGS)

test: setup
	$(PY) tests/run_all.py

test-sanity: setup
	$(PY) tests/run_all.py sanity

test-unit: setup
	$(PY) tests/run_all.py unit

test-sandbox: setup
	$(PY) tests/run_all.py sandbox

docs: setup
	$(PY) tests/run_all.py docs

lint: setup
	$(VENV)/bin/ansible-lint --profile production

bench: sandbox-up
	$(PY) bench/sandbox_arm.py
	$(PY) bench/fleet.py --clusters 10 50 --forks 10

clean: sandbox-down
	rm -rf tests/output .pytest_cache
