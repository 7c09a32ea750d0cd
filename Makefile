# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch is pinned here (not in pyproject) so pip takes the CPU wheel on disk
# instead of downloading a multi-GB CUDA build; users elsewhere keep their own torch.
TORCH_PIN ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install browser java demo test bench lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_PIN)"
	$(PIP) install -q -e ".[dev,spark]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/causalrec demo --out reports/demo

# The report's browser test needs headless Chromium (Debian package). Installed
# best-effort when we can (root + apt-get); without it that one test is skipped
# and says why.
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null) \
	  || echo "note: chromium not installed; the browser test will be skipped"; }

# The Spark engine's tests need a Java runtime (Debian package default-jre-headless), installed
# best-effort like Chromium; without one they are skipped and say why.
java:
	@command -v java >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends default-jre-headless >/dev/null) \
	  || echo "note: no Java runtime; the Spark engine tests will be skipped"; }

test: install browser java
	$(PY) -m pytest -q

# Slow tests (coverage studies, A/A simulations, the OPE 10M/100M-row benchmark), then
# the benchmark scripts; each writes its own section of reports/benchmarks.md.
bench: install
	$(PY) -m pytest -q -m slow -p no:cacheprovider
	$(PY) analyses/bench_embeddings.py
	$(PY) analyses/bench_nuisance.py
	$(PY) analyses/bench_dml.py --append
# A/B (issue 13): the slow tests above already ran analyses/ab_sequential.py and ab_engines.py and
# wrote reports/ab_sequential.md and ab_engines.md; this re-checks the engines (fast; side virtualenvs
# for gbstats 0.8.0 and spotify-confidence 4.1.0 are built once under .bench-venvs/ and reused).
	$(PY) analyses/ab_engines.py > /dev/null
# Spark engine (issue 12): 10M rows equal to in-process, 100M rows local[1] vs local[2] vs streaming;
# writes its section of reports/benchmarks.md and reports/spark_bench.json (data in /tmp, deleted).
	$(PY) analyses/spark_bench.py

lint: install
	$(VENV)/bin/ruff check causalrec tests analyses

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info .bench-venvs
