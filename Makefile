# Entry points: `make install`, `make test`, `make demo`. Everything runs in .venv (CPU stack).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test demo lint clean

install:
	@bash tools/install.sh $(VENV)

test: install
	$(PY) -m pytest tests -q

demo: install
	$(PY) tools/demo.py

lint: install
	$(PY) -m ruff check mmseg_hrplus tools tests configs

clean:
	rm -rf $(VENV) work_dirs data/demo
