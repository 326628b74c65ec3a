# ecg-lightning: `make run` and `make test` create the environment when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch + torchvision pair that lies on these machines (a CUDA build that also runs on CPU;
# PyPI's torchvision does not import beside the CPU-only 2.13.0). Other machines:
# make install TORCH_SPEC="torch>=2.3 torchvision>=0.18"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.DEFAULT_GOAL := help
.PHONY: help install run test test-full bench ui clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install $(TORCH_SPEC)
	$(BIN)/pip install -e ".[dev]"
	touch $(BIN)/activate

install: $(BIN)/activate  ## create .venv with torch and the package (editable, dev extras)

run: install  ## train and test the default model on mitdb (python -m ecg_lightning.run)
	$(BIN)/python -m ecg_lightning.run $(ARGS)

# The fast suite runs in TEST_WORKERS pytest-xdist processes, a test file to each (module
# fixtures are built once); TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2

test: install  ## the fast test suite (2 workers; about 7 minutes on 2 cores)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(ARGS)

test-full: install  ## every test, the slow ones included
	$(BIN)/python -m pytest -m "" $(ARGS)

bench: install  ## speed and memory benchmarks -> outputs/bench/*.json
	$(BIN)/python -m ecg_lightning.bench $(ARGS)

ui: install  ## the MLflow UI on http://127.0.0.1:5000 over the project's store
	$(BIN)/mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db --host 127.0.0.1 --port 5000

clean:  ## remove caches and run outputs (keeps the MLflow store and the venv)
	rm -rf outputs/runs outputs/multiruns outputs/cache outputs/bench .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
