# Every target that runs code depends on `setup`, so on a fresh machine `make train` or `make test` does the
# whole set-up itself: a virtualenv in .venv, torch from the pinned wheels, aelab (editable) with its console
# scripts, and Fashion-MNIST from the Debian package when we are root (or have passwordless sudo).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.aelab-installed
FMNIST_FILE := train-images-idx3-ubyte.gz
ARGS ?=

.PHONY: setup data train eval lint docs test test-fast sweep report paper results bench clean dashboard wheel-check

setup: $(STAMP) data

# pyproject.toml declares ranges (aelab as a library); requirements.lock pins the tested set, installed here.
# A new .venv takes about 6.5 GB (torch's Linux wheels bring CUDA libraries even for CPU use): say so at once
# rather than failing halfway through pip with "No space left on device".
NEED_KB := 7000000
$(STAMP): pyproject.toml requirements.lock
	@[ -x $(BIN)/python ] || { free=$$(df -Pk . | awk 'NR==2 {print $$4}'); [ "$$free" -ge $(NEED_KB) ] || \
	  { echo "make setup: a new .venv needs about 7 GB free here, $$((free / 1000000)) GB free in $$(pwd)"; exit 1; }; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock torch torchvision
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

# Fashion-MNIST, espeak-ng (data=speech), tmux (the dashboard test) and chromium (the explorer test, driven by
# playwright through its executable path) from Debian's packages (when root).
# (data=breast_cancer writes its CSV itself.)
data: $(STAMP)
	@if [ -f data/fashion_mnist/$(FMNIST_FILE) ] || [ -f /usr/share/datasets/fashion-mnist/$(FMNIST_FILE) ]; then \
	  echo "Fashion-MNIST: found"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null && echo "Fashion-MNIST: installed dataset-fashion-mnist"; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
	  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else \
	  echo "Fashion-MNIST: not installed; 'apt-get install dataset-fashion-mnist' as root, or aelab downloads it on first use"; \
	fi
	@missing=""; for tool in espeak-ng tmux chromium; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -z "$$missing" ]; then \
	  echo "espeak-ng, tmux, chromium: found"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null && echo "installed:$$missing"; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
	  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
	  echo "not installed:$$missing; 'apt-get install$$missing' as root (data=speech uses espeak-ng, the dashboard test tmux, the explorer test chromium)"; \
	fi

# Several sweeps in one local W&B dashboard: make dashboard SWEEPS="outputs/sweeps/<a> outputs/sweeps/<b>"
dashboard: setup
	@test -n "$(SWEEPS)" || { echo 'usage: make dashboard SWEEPS="<sweep folder> <sweep folder> ..."'; exit 2; }
	@rm -rf outputs/dashboard && mkdir -p outputs/dashboard
	@for s in $(SWEEPS); do ln -s "$$(cd "$$s/wandb" && pwd)"/*run-* outputs/dashboard/ || exit 1; done
	$(BIN)/wandb leet outputs/dashboard

train: setup
	$(BIN)/aelab-train $(ARGS)

eval: setup
	$(BIN)/aelab-eval $(ARGS)

# The main job: the compare_fmnist sweep (16 jobs, joblib, 2 at a time), then its report. The sweep folder is
# fixed, so running `make sweep` again after an interruption completes only the jobs that are left.
SWEEP_DIR := outputs/sweeps/compare_fmnist
sweep: setup
	$(BIN)/aelab-train -m experiment=compare_fmnist $(ARGS); status=$$?; \
	  $(BIN)/aelab-report $(SWEEP_DIR) && exit $$status

# A reproduced paper table (conf/experiment/paper/NAME.yaml): its sweep, baselines included, then its report with
# ours | paper | difference. Re-running completes only the jobs that are left.
paper: setup
	@[ -n "$(NAME)" ] || { echo "usage: make paper NAME=<compression|one_class|recognition|likelihood|generation|disentanglement|posteriors|quantizers>"; exit 1; }
	$(BIN)/aelab-train -m experiment=paper/$(NAME) $(ARGS); status=$$?; \
	  $(BIN)/aelab-report outputs/sweeps/paper_$(NAME) && exit $$status

# docs/results.md and docs/results/<name>/ from the paper sweeps under outputs/sweeps/
results: setup
	@for d in outputs/sweeps/paper_*; do $(BIN)/aelab-report $$d --publish docs/results || exit 1; done

report: setup
	$(BIN)/aelab-report $(or $(SWEEP),$(SWEEP_DIR))

lint: setup
	$(BIN)/ruff check src tests scripts

# The documentation site (mkdocs.yml, docs/) into site/, strictly: a warning or a broken internal link fails.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The full suite (what CI runs, after the linter and the docs build) and the fast tier: no CLI processes, no
# training runs.
test: setup lint docs
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

# Opt-in, not part of make test or CI: the wheel built from this checkout, installed with the core dependencies
# only (no extra) into a fresh venv under /tmp, which downloads torch (about 7 GB with its CUDA libraries); then,
# from that folder, a short training run and its report, no extra's package installed, and the one-line errors of
# two extras' features. tests/test_extras.py checks the same in the project venv with the extras' modules blocked.
WHEEL_CHECK := /tmp/aelab-wheel-check
EXTRA_PACKAGES := soundfile|noisereduce|scikit-image|PyWavelets|optuna|SQLAlchemy|alembic|onnx|onnxscript|onnxruntime|gradio|torch-fidelity
wheel-check:
	rm -rf $(WHEEL_CHECK) && mkdir -p $(WHEEL_CHECK)
	$(PYTHON) -m venv $(WHEEL_CHECK)/venv
	$(WHEEL_CHECK)/venv/bin/python -m pip install --quiet --upgrade pip
	$(WHEEL_CHECK)/venv/bin/python -m pip wheel --quiet --no-deps -w $(WHEEL_CHECK)/dist .
	$(WHEEL_CHECK)/venv/bin/python -m pip install --quiet -c requirements.lock $(WHEEL_CHECK)/dist/aelab-*.whl
	@! $(WHEEL_CHECK)/venv/bin/python -m pip list 2>/dev/null | grep -iE '^($(EXTRA_PACKAGES)) ' || \
	  { echo "wheel-check: the core install brought an extra's package (above)"; exit 1; }
	cd $(WHEEL_CHECK) && venv/bin/aelab-train data=digits model/arch=mlp trainer.max_epochs=1 logger=none \
	  callbacks.progress=null hydra.run.dir=runs/core
	cd $(WHEEL_CHECK) && venv/bin/aelab-report runs
	cd $(WHEEL_CHECK) && venv/bin/aelab-train data=speech 2>&1 | \
	  grep -F "data=speech needs the audio extra: pip install 'aelab[audio]'"
	cd $(WHEEL_CHECK) && venv/bin/aelab-train -m hparams_search=optuna_fmnist 2>&1 | \
	  grep -F "hydra/sweeper=optuna needs the optuna extra: pip install 'aelab[optuna]'"
	@echo "wheel-check: the core wheel trains and reports without extras; a missing extra names its pip command"

bench: setup
	$(BIN)/python scripts/bench.py $(ARGS)

clean:
	rm -rf outputs .pytest_cache site
