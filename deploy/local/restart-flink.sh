#!/usr/bin/env bash
# make restart-flink: the detection job on a real Flink session cluster with checkpointing, crashed
# (TaskManager SIGKILLed mid-stream) and cancelled after a savepoint, then an upgraded job (new settings
# file, new steps on the alerts) restored from it; its alerts compared with the local runner's
# (pipelines/restart_check.py). Everything it starts is stopped at the end.
#
#   RESTART_RATE=300 RESTART_DAYS=4 RESTART_ACTORS=40 RESTART_UPGRADE=settings,steps deploy/local/restart-flink.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PY="$REPO_ROOT/.venv/bin/python"
OUT="$REPO_ROOT/out/restart-flink"
export RUN_DIR="$OUT/services"
rm -rf "$OUT" && mkdir -p "$RUN_DIR"

stop_stream_services_on_exit

echo "== 1/3 simulate ${RESTART_DAYS:-4} days, ${RESTART_ACTORS:-40} accounts (seed ${RESTART_SEED:-7})"
"$PY" -m pipelines simulate --output "$OUT/input" --seed "${RESTART_SEED:-7}" --days "${RESTART_DAYS:-4}" \
  --actors "${RESTART_ACTORS:-40}"
echo "== 2/3 start Kafka (KRaft), a Flink session cluster, the Beam job server and KafkaIO expansion service"
eval "$("$REPO_ROOT/deploy/local/kafka.sh" start)"
eval "$("$REPO_ROOT/deploy/local/flink-cluster.sh" start)"
eval "$(FLINK_MASTER="$FLINK_MASTER" "$REPO_ROOT/deploy/local/beam-services.sh" start)"
echo "== 3/3 reference run, TaskManager crash, savepoint + cancel and restore into an upgraded job, control without state"
"$PY" -m pipelines.restart_check --bootstrap "$BOOTSTRAP" --job-endpoint "$JOB_ENDPOINT" \
  --expansion-service "$EXPANSION_SERVICE" --flink-master "$FLINK_MASTER" --input "$OUT/input/events.jsonl" \
  --savepoint-dir "$RUN_DIR/flink-checkpoints/savepoints" --rate "${RESTART_RATE:-300}" --upgrade "${RESTART_UPGRADE:-settings,steps}" | tee "$OUT/report.json"
