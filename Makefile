# Set-up and everyday commands. Needs only python3 (3.10 or newer) on the machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Each stamp is re-made whenever pyproject.toml changes. The demo needs only the package's base
# dependencies; the tests also need the test extras (the model's torch and MONAI, slicer-core,
# pytest), which include the base, so making the test stamp makes the demo stamp too.
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test
PYTEST_ARGS ?= -n 2

.PHONY: demo test test-other-cpu bench clean distclean

$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e .
	touch $@

# torch: the CPU build this project is tested with, installed first so that the model extra's
# range is met without pulling a multi-GB CUDA build
$(TEST_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c 'import torch' 2>/dev/null || $(BIN)/python -m pip install 'torch==2.13.0'
	$(BIN)/python -m pip install -e '.[test]'
	touch $@ $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/tha-annotator demo --out demo-output

test: $(TEST_STAMP)
	$(BIN)/python -m pytest Testing -ra $(PYTEST_ARGS)

# The suite as a CPU without AVX-512 computes it: NumPy and PyTorch take their AVX2 paths, whose
# last bits of rounding differ. A test that flips here sits on a knife edge (docs/layout.md).
NO_AVX512 := AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR AVX512VL \
	AVX512BW AVX512DQ AVX512VNNI AVX512IFMA AVX512VBMI AVX512VBMI2 AVX512BITALG AVX512BF16 X86_V4
test-other-cpu: $(TEST_STAMP)
	NPY_DISABLE_CPU_FEATURES="$(NO_AVX512)" ATEN_CPU_CAPABILITY=avx2 \
		$(BIN)/python -m pytest Testing -ra $(PYTEST_ARGS)

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/batch.py
	$(BIN)/python benchmarks/memory.py

clean:
	rm -rf demo-output build *.egg-info .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
