# The README's two commands: `make run` (set up, then run the service on the embedded default
# model) and `make test` (set up, then run the test suite). Everything installs into .venv.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
# torch's CPU build: on this project's machines pip finds torch==2.13.0+cpu on local disk;
# elsewhere set TORCH_INDEX=--index-url=https://download.pytorch.org/whl/cpu to avoid a CUDA build.
TORCH  ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: setup run demo test bench wordnet clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_INDEX) "$(TORCH)"
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

# the service on 127.0.0.1:8000: dry-run without GitHub credentials, zero-shot without a bundle;
# with no GITHUB_WEBHOOK_SECRET a random one is made and printed with a signed example delivery
run: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/issue-labeler serve --generate-secret

demo: setup
	$(VENV)/bin/issue-labeler demo

test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

# WordNet for `train --augment synonym`: Debian's files copied into ~/nltk_data (NLTK_DATA_DIR=...
# elsewhere, then export NLTK_DATA). The tests do not need it: they build a tiny WordNet.
NLTK_DATA_DIR ?= $(HOME)/nltk_data
wordnet: setup
	$(VENV)/bin/issue-labeler augment-setup --nltk-data "$(NLTK_DATA_DIR)"

bench: setup
	$(PY) experiments/benchmark.py --dataset hf-datasets --strategies naive_bayes --seeds 0-4
	$(PY) experiments/benchmark.py --dataset sklearn --strategies naive_bayes --seeds 0-4
	$(PY) experiments/benchmark.py --dataset hf-datasets --report
	$(PY) experiments/benchmark.py --dataset sklearn --report

clean:
	rm -rf $(VENV) runs .pytest_cache
