# Two entry points for a fresh machine with Python 3.11 and pip: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# The main job on an embedded default: generate a small synthetic infrared scene, detect its targets.
demo: $(STAMP)
	@mkdir -p runs/demo
	$(BIN)/irstd synth --out runs/demo/scene --count 1 --size 256 256 --seed 7 --overwrite
	$(BIN)/irstd detect runs/demo/scene/images --out runs/demo/detect --save-mask --save-overlay --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/baselines.py

clean:
	rm -rf $(VENV) build *.egg-info
