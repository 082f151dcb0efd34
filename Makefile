# Two commands for a fresh machine; both set everything up and are quick on a second call.
#   make run    venv + package + FashionMNIST, then the main job on the embedded default
#   make test   the same set-up, then the test suite
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE ?= 1

.PHONY: run test setup data

run: setup data
	$(VENV)/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no \
	    --dynamo_backend no genprior/run.py pixel=dm ipc=10 objective.compile=true protocol=fast

test: setup data
	$(PY) -m pytest -q

setup: $(STAMP)

# Reinstall only when the package's declared dependencies change.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $(STAMP)

data: setup
	@PY=$(PY) bash scripts/get-data.sh
