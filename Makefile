# Every target installs what it needs from pyproject.toml into .venv first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
WORKERS ?= 2

.PHONY: install demo test gpu-test bench demo-assets clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[export,dev]"
	touch $@

demo: install
	$(VENV)/bin/sleap-export demo --output-dir demo_output

# worksteal: a worker that runs out of tests takes queued ones from the other (the parity tests vary from seconds to minutes).
test: install
	$(PY) -m pytest -n $(WORKERS) --dist worksteal -q

# TensorRT and CUDA tests (they skip cleanly in `make test`); run this on a GPU machine.
# Fails when TensorRT cannot be installed, rather than skipping everything.
gpu-test: install
	$(PY) -m pip install -q -e ".[export,dev,trt]"
	$(PY) -c "from sleap_export.runtime.backends.tensorrt_runner import local_target; print(local_target())"
	$(PY) -m pytest -m gpu -n 1 -q -rs

# The README's speed and accuracy tables: every model type and CPU variant against sleap-nn, one run (~90 min on 2 cores).
bench: install
	$(PY) scripts/bench.py --realistic

# Re-creates the bundled demo clip and model (sleap-nn training, ~3 min on CPU).
demo-assets: install
	$(PY) scripts/make_demo.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache
