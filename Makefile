# The README's two commands are `make serve` and `make test`; .ci/run calls `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# Not quiet: a first install downloads for minutes, and pip's lines show that it does.
PIP := $(PY) -m pip --disable-pip-version-check

.PHONY: install install-test serve test test-fast lint fmt bench proto clean

$(VENV)/.core: pyproject.toml
	@echo "Installing OpenEAS and the Dagster pipelines into $(VENV) (the first time takes a few minutes)"
	python3 -m venv $(VENV)
	$(PIP) install -e ".[pipelines]"
	touch $@

$(VENV)/.test: pyproject.toml
	@echo "Installing OpenEAS with every test dependency into $(VENV) (the first time takes several minutes)"
	python3 -m venv $(VENV)
	@# every built-in processor's framework: their tests run against the real libraries
	$(PIP) install -e ".[pipelines,test,all]"
	@# Headless Chromium drives the Dagster UI in the pipeline tests.
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	@# Java runs JPMML (the pmml processor) and sklearn2pmml (the heart-disease training).
	@command -v java >/dev/null || (apt-get update -qq && apt-get install -y -qq default-jre-headless >/dev/null)
	@# javac and gcc build the Java and C/C++ processor examples in their tests.
	@command -v javac >/dev/null || (apt-get update -qq && apt-get install -y -qq default-jdk-headless >/dev/null)
	@command -v g++ >/dev/null || (apt-get update -qq && apt-get install -y -qq g++ make >/dev/null)
	@# Prometheus scrapes an installation through its discovery endpoint in the monitoring tests.
	@command -v prometheus >/dev/null || (apt-get update -qq && apt-get install -y -qq prometheus >/dev/null)
	@# The store's tests run on a throwaway PostgreSQL cluster as well as on SQLite.
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null)
	touch $@ $(VENV)/.core

install: $(VENV)/.core

install-test: $(VENV)/.test

# A whole installation on this machine — controller, gateway, instances, the echo demo and
# the Dagster deployment pipelines (UI on :3000); Ctrl-C stops it all.
serve: install
	@echo "Starting the controller, the gateway, the demo and the Dagster UI (Ctrl-C stops all)"
	$(VENV)/bin/eascmd server --demo --pipelines

# Every check, then every test. pytest's exit status 5 (nothing collected) fails like any other.
test: lint
	$(PY) -m pytest

test-fast: install-test
	$(PY) -m pytest tests/unit

lint: install-test
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

fmt: install-test
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Every workload against every peer (bench/README.md); BENCH_ARGS=--quick for a smoke check.
bench: install
	$(PY) -m bench $(BENCH_ARGS)

# Regenerate processors/wire/*_pb2.py(i) from the .proto files; fails when the committed ones
# differ from what protoc makes of them.
proto: install-test
	$(PY) -m grpc_tools.protoc -I processors/wire --python_out=processors/wire \
		--pyi_out=processors/wire processors/wire/*.proto
	git diff --exit-code -- processors/wire

clean:
	rm -rf $(VENV) .venv-easpred .pytest_cache .ruff_cache test-artifacts
