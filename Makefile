# Two commands do all set-up on a fresh machine:
#   make demo   - create/refresh .venv, then run the main job on the embedded default data
#   make test   - create/refresh .venv, then lint and run the default (fast) test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.seqrep-installed
# torch 2.13.0 is installed first, on its own: a range that it satisfies then installs nothing
# more, whereas a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
# The tests run in one worker process per core (pytest-xdist); the expensive shared fixture (a
# short SAC run) is built once per session by whichever worker needs it first (tests/conftest.py).
TEST_WORKERS ?= auto

.PHONY: venv demo test test-slow lint docs bench mi-bench study-quick clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	sh .ci/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# One seed in a run folder (report, plots, checkpoint), then five seeds beside the raw series:
# one seed's accuracy is not the method's. One torch thread: as fast as two here (these models
# are small), and it does not crawl when other jobs hold the cores (two threads on a busy
# 2-core machine took over 5 minutes for a 16 s cell, and 10 minutes for the first step).
demo: $(STAMP)
	$(BIN)/seqrep --threads 1 pretrain --data GunPoint --method cpc \
		--out runs/demo-cpc-gunpoint --overwrite
	rm -rf runs/demo-cpc-gunpoint-5-seeds
	$(BIN)/seqrep bench series --datasets GunPoint --methods cpc,raw --threads 1 \
		--out runs/demo-cpc-gunpoint-5-seeds/series.json

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	sh .ci/system-deps.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mkdocs build --strict --quiet --site-dir site
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(BIN)/python -m pytest -m "not slow" -q -n $(TEST_WORKERS) --maxschedchunk 1

# The documentation (API reference from the docstrings, and the guides in docs/) into site/;
# any warning (a broken link, a docstring that does not match its signature) fails it.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

test-slow: $(STAMP)
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(BIN)/python -m pytest -m slow -q

bench: $(STAMP)
	$(BIN)/python bench/losses.py
	$(BIN)/python bench/series.py

study-quick: $(STAMP)
	$(BIN)/seqrep study --profile quick --out runs/study-quick

mi-bench: $(STAMP)
	$(BIN)/seqrep mi-bench --out runs/demo-mi-bench --overwrite

clean:
	rm -rf $(VENV) runs site .pytest_cache .ruff_cache .mypy_cache
