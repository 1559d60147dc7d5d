# Entry points: `make install`, `make test`, `make demo`. Everything runs in .venv (main stack:
# torch 2.13 CPU). The torch 2.1 stack (what GPU users with OpenMMLab's prebuilt mmcv 2.1.0
# wheels run) has its own venv and targets: `make install-torch21`, `make test-torch21`.
VENV ?= .venv
PY := $(VENV)/bin/python
VENV_TORCH21 ?= .venv-torch21
PY_TORCH21 := $(VENV_TORCH21)/bin/python

# What the torch 2.1 leg runs is what carries the torch21 marker (setup.cfg): checkpoint reading
# and security (local and by URL), exact resume, the demo-sized train -> test -> infer cycle
# (images and videos, mmseg's MMSegInferencer), 2-process and 2-node gloo training, every
# config, and HRNet / BiSeNetV2 parity with mmseg.

# `make fuzz`: the checkpoint reader's mutation fuzzer in its long mode (CI runs 40 s of it).
FUZZ_SECONDS ?= 1800

.PHONY: install test demo lint clean install-torch21 test-torch21 fuzz

install:
	@bash tools/install.sh $(VENV)

test: install
	$(PY) -m pytest tests -q

install-torch21:
	@STACK=torch21 bash tools/install.sh $(VENV_TORCH21)

test-torch21: install-torch21
	$(PY_TORCH21) -m pytest -m torch21 tests -q

fuzz: install
	$(PY) -m tests.checkpoint.fuzz_reader --seconds $(FUZZ_SECONDS) --out work_dirs/fuzz_reader

demo: install
	$(PY) tools/demo.py

lint: install
	$(PY) -m ruff check mmseg_hrplus tools tests configs projects

clean:
	rm -rf $(VENV) $(VENV_TORCH21) work_dirs data/demo
