#!/usr/bin/env bash
# make demo-flink: simulated partner traffic streamed through Kafka into the detection pipeline on a
# real Flink session cluster; alerts printed as they arrive on the alerts topic; everything stopped.
#
#   DEMO_RATE=300 DEMO_DAYS=14 DEMO_ACTORS=80 deploy/local/demo-flink.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PY="$REPO_ROOT/.venv/bin/python"
OUT="$REPO_ROOT/out/demo-flink"
export RUN_DIR="$OUT/services"
rm -rf "$OUT" && mkdir -p "$RUN_DIR"

stop_stream_services_on_exit

echo "== 1/5 simulate ${DEMO_DAYS:-14} days, ${DEMO_ACTORS:-80} accounts (seed ${DEMO_SEED:-7})"
"$PY" -m pipelines simulate --output "$OUT/input" --seed "${DEMO_SEED:-7}" --days "${DEMO_DAYS:-14}" --actors "${DEMO_ACTORS:-80}"
echo "== 2/5 start Kafka (KRaft), a Flink session cluster, the Beam job server and KafkaIO expansion service"
eval "$("$REPO_ROOT/deploy/local/kafka.sh" start)"
"$REPO_ROOT/deploy/local/kafka.sh" topics guetteur.events guetteur.alerts guetteur.deadletter
eval "$("$REPO_ROOT/deploy/local/flink-cluster.sh" start)"
eval "$(FLINK_MASTER="$FLINK_MASTER" "$REPO_ROOT/deploy/local/beam-services.sh" start)"
PROM_LOW="${FLINK_PROMETHEUS_PORT:-9249}"
echo "   Flink web UI: $FLINK_WEB   Prometheus metrics: http://127.0.0.1:$PROM_LOW/metrics (JobManager), :$((PROM_LOW + 1)) (TaskManager)"
echo "== 3/5 stream events at ${DEMO_RATE:-300}/s into guetteur.events; detection runs on Flink; alerts as they arrive:"
"$PY" -m pipelines.stream_demo --bootstrap "$BOOTSTRAP" --job-endpoint "$JOB_ENDPOINT" \
  --expansion-service "$EXPANSION_SERVICE" --flink-master "$FLINK_MASTER" --input "$OUT/input/events.jsonl" \
  --rate "${DEMO_RATE:-300}" --limit "${DEMO_LIMIT:-0}" --prometheus-ports "$PROM_LOW,$((PROM_LOW + 1))" \
  | tee "$OUT/summary.txt"
echo "== 4/5 evaluation of the streamed alerts against the labelled incidents"
"$PY" - "$BOOTSTRAP" "$OUT" <<'PYEOF'
import json, sys
from pipelines.replay import consume
records = consume(sys.argv[1], "guetteur.alerts", lambda r: False, timeout_s=5)
with open(f"{sys.argv[2]}/alerts.jsonl", "w") as handle:
    for alert, _, _ in records:
        handle.write(json.dumps(alert) + "\n")
PYEOF
"$PY" -m pipelines evaluate --alerts "$OUT/alerts.jsonl" --labels "$OUT/input/labels.json" > "$OUT/evaluation.json"
head -c 1500 "$OUT/evaluation.json"; echo
echo "== 5/5 stop everything (logs kept in $RUN_DIR)"
