# Guetteur — every target works as the first command on a fresh machine:
# it creates .venv and installs the pinned dependencies before doing its work.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := out/demo
DEMO_SEED ?= 7
DEMO_DAYS ?= 14
DEMO_ACTORS ?= 200

.PHONY: setup test demo clean

setup: $(STAMP)

$(STAMP): requirements.lock setup.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Guetteur needs Python 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

test: setup prometheus tools
	$(BIN)/python -m pytest -q tests

# A real Prometheus server and promtool for the metrics tests: Debian's prometheus package, unpacked
# into .cache/ by deploy/local/prometheus.sh (no system service). `deploy/local/prometheus.sh run`
# starts one on 127.0.0.1:9090 with deploy/prometheus/prometheus.yml.
.PHONY: prometheus
PROMTOOL := .cache/prometheus/usr/bin/promtool
prometheus: $(PROMTOOL)

$(PROMTOOL): deploy/local/prometheus.sh
	deploy/local/prometheus.sh install >/dev/null

demo: setup
	@rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	@echo "== 1/4 simulate $(DEMO_DAYS) days of partner traffic, $(DEMO_ACTORS) accounts, seed $(DEMO_SEED)"
	$(BIN)/guetteur simulate --output $(DEMO_DIR)/input --seed $(DEMO_SEED) --days $(DEMO_DAYS) --actors $(DEMO_ACTORS)
	@echo "== 2/4 detect on the local runner"
	$(BIN)/guetteur detect --input '$(DEMO_DIR)/input/events.jsonl' --output $(DEMO_DIR)/detect
	@echo "== 3/4 alerts"
	@$(BIN)/guetteur show --alerts '$(DEMO_DIR)/detect/alerts*.jsonl'
	@echo "== 4/4 evaluation against the labelled incidents"
	@$(BIN)/guetteur evaluate --alerts '$(DEMO_DIR)/detect/alerts*.jsonl' --labels $(DEMO_DIR)/input/labels.json

# Guetteur against two yardsticks (a static >200 records/hour rule, Beam's AnomalyDetection ZScore),
# through the same evaluation, on one simulated month: 3 minutes on 2 idle cores, 5-6 when they are shared.
COMPARE_DIR := out/compare
COMPARE_SEED ?= 7
COMPARE_DAYS ?= 28
COMPARE_ACTORS ?= 300
.PHONY: compare evaluate-seeds
compare: setup
	$(BIN)/python -m pipelines.compare --output $(COMPARE_DIR) --seed $(COMPARE_SEED) --days $(COMPARE_DAYS) --actors $(COMPARE_ACTORS)

# Guetteur on several seeds (smaller populations), aggregated per scenario: tune on this, never on one seed.
# SEEDS_DETECTORS=guetteur,static,zscore adds the yardsticks.
SEEDS_DIR := out/seeds
SEEDS ?= 1,2,3,4,5
SEEDS_DAYS ?= 14
SEEDS_ACTORS ?= 120
SEEDS_DETECTORS ?= guetteur
evaluate-seeds: setup
	$(BIN)/python -m pipelines.compare --output $(SEEDS_DIR) --seeds $(SEEDS) --days $(SEEDS_DAYS) --actors $(SEEDS_ACTORS) --detectors $(SEEDS_DETECTORS)

# Nothing lost, nothing counted twice: `guetteur detect` on corrupt, shuffled, split, duplicated, broken-gzip,
# gzip-mixed and hostile variants of one simulated week, checked line by line against a clean run
# (pipelines/chaos.py; tests/test_chaos.py runs the same scenarios). About a minute on 2 cores.
CHAOS_DIR := out/chaos
CHAOS_SEED ?= 11
CHAOS_DAYS ?= 6
CHAOS_ACTORS ?= 40
.PHONY: chaos
chaos: setup
	$(BIN)/python -m pipelines.chaos --output $(CHAOS_DIR) --seed $(CHAOS_SEED) --days $(CHAOS_DAYS) --actors $(CHAOS_ACTORS)

# Issue 6's yardstick: `guetteur detect` against plain Python (orjson + dict count per account and 5-minute
# window) on the same ~1M simulated events, as a same-run ratio; events x1/x2/x4 and accounts x1/x10/x100 with
# time and peak RSS (detect and its worker processes); state bytes per account from `guetteur train`. Each row
# runs with the workers detect picks by default (one per core from 64 MiB of input; BENCH_WORKERS=N to force),
# and the x1 file again in one process. Each row runs detect BENCH_RUNS times (3), plain Python before and
# after each, and keeps each side's fastest run: this VM's speed drifts. Table on stdout, out/bench/report.json.
# Simulated files are kept under out/bench/data and reused. BENCH_SCALE=small: ~100k events, a few minutes.
# BENCH_FLINK_RATES=500,1000,2000 adds streaming rows on a real Flink session cluster fed from Kafka
# (BENCH_FLINK_EVENTS per rate, default 60000; ~3 min per rate): throughput and alert latency p50/p99.
BENCH_DIR := out/bench
BENCH_SCALE ?= full
BENCH_FLINK_RATES ?=
BENCH_FLINK_EVENTS ?= 60000
BENCH_RUNS ?= 3
.PHONY: bench
bench: setup $(if $(BENCH_FLINK_RATES),tools)
	$(if $(BENCH_FLINK_RATES),deploy/local/fetch.sh flink-dist)
	BENCH_SCALE=$(BENCH_SCALE) BENCH_FLINK_RATES=$(BENCH_FLINK_RATES) BENCH_FLINK_EVENTS=$(BENCH_FLINK_EVENTS) \
	  BENCH_RUNS=$(BENCH_RUNS) $(BIN)/python -m pipelines.bench --output $(BENCH_DIR)

# Runner tools (issue 4), fetched into .cache/ by deploy/local/fetch.sh on first use: Beam's Flink
# runner + job server + KafkaIO expansion service classpath and a Kafka broker (Maven Central), a Flink
# session cluster (PyPI apache-flink-libraries, for demo-flink only), Prism (go install). The stamps
# make later runs free; the tests call the same script, so `make test` works without this step too.
.PHONY: tools demo-flink
TOOLS_STAMP := .cache/.tools-$(shell cat deploy/local/versions.sh deploy/local/fetch.sh | cksum | cut -d' ' -f1)
tools: $(TOOLS_STAMP)

$(TOOLS_STAMP):
	deploy/local/fetch.sh flink-runner kafka prism
	@touch $@

# Simulated traffic streamed at DEMO_RATE events/s into Kafka, detection on a real Flink session
# cluster (JobManager + TaskManager), alerts printed as they arrive, latency and rates measured,
# everything stopped at the end (deploy/local/demo-flink.sh). Ports: free ones, 9249-9259 for metrics.
# Two weeks of 80 accounts (~90k events, incidents from day 4 on) at 300 events/s: about 5 minutes of
# stream, a rate the pipeline sustains on 2 shared cores (it measured ~390-510 events/s there), so
# alerts leave while events still stream in. Above what it sustains, the lag (and latency) grows.
DEMO_RATE ?= 300
demo-flink: setup tools
	deploy/local/fetch.sh flink-dist
	DEMO_RATE=$(DEMO_RATE) DEMO_DAYS=$(or $(DEMO_FLINK_DAYS),14) DEMO_ACTORS=$(or $(DEMO_FLINK_ACTORS),80) DEMO_SEED=$(DEMO_SEED) \
	  deploy/local/demo-flink.sh

# Restarts on a real Flink session cluster (issue 7): TaskManager killed mid-stream; savepoint, cancel
# and restore into an upgraded job; alerts compared with the local runner's (deploy/local/restart-flink.sh). ~15 minutes.
.PHONY: restart-flink
restart-flink: setup tools
	deploy/local/fetch.sh flink-dist
	deploy/local/restart-flink.sh

clean:
	rm -rf out build *.egg-info .pytest_cache
