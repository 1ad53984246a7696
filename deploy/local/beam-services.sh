#!/usr/bin/env bash
# Beam's Flink job server and the KafkaIO expansion service, on 127.0.0.1.
#
#   deploy/local/beam-services.sh start   # JOB_PORT, EXPANSION_PORT (free ports if unset), FLINK_MASTER ([local])
#   deploy/local/beam-services.sh stop
#   deploy/local/beam-services.sh env     # JOB_ENDPOINT=... EXPANSION_SERVICE=... of the running services
#
# Both run on the classpath fetch.sh resolved (runner, Java SDK harness, KafkaIO, kafka-clients), so a
# Kafka transform expanded with --defaultEnvironmentType=EMBEDDED runs inside the Flink JVM: in the job
# server itself with FLINK_MASTER=[local] (Flink's embedded mini-cluster), or in the TaskManagers of
# the session cluster the job server submits to (it ships this classpath with the job).
#
# use_deprecated_read: KafkaIO then expands to a plain unbounded Read, which Flink runs natively
# (UnboundedSourceWrapper: checkpointed offsets, a watermark emitted every auto-watermark interval).
# Without it, Beam 2.54 expands KafkaIO to a splittable DoFn that, on Flink's portable runner,
# never returns while polls bring records (the runner sends it no split requests): its bundle, and
# so its watermark, only move when the topic pauses. (This setting is read
# from the expansion service's own options, not from the pipeline's: it must be here.)
# State: $RUN_DIR (default out/local-services): *.pid, *.log, beam-services.env.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start() {
  "$REPO_ROOT/deploy/local/fetch.sh" flink-runner
  local cp; cp="$(classpath_of "$BEAM_FLINK_DIR"):$KAFKA_READ_JAR"
  local free; read -r -a free <<<"$(free_ports 3)"
  local job_port="${JOB_PORT:-${free[0]}}" expansion_port="${EXPANSION_PORT:-${free[1]}}"
  local internal_expansion_port="${free[2]}"
  local master="${FLINK_MASTER:-[local]}"
  require_free_port "$job_port" "Flink job server"
  require_free_port "$expansion_port" "expansion service"
  start_service flink-job-server java "${JAVA_OPENS[@]}" ${JOB_SERVER_JAVA_OPTS:--Xmx2g} -cp "$cp" \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    org.apache.beam.runners.flink.FlinkJobServerDriver \
    --job-host 127.0.0.1 --job-port "$job_port" --artifact-port 0 \
    --expansion-port "$internal_expansion_port" --flink-master "$master"
  start_service expansion-service java -Xmx512m -cp "$cp" \
    org.apache.beam.sdk.expansion.service.ExpansionService "$expansion_port" \
    --defaultEnvironmentType=EMBEDDED --experiments=use_deprecated_read
  wait_for_port flink-job-server "$job_port" 120
  wait_for_port expansion-service "$expansion_port" 120
  printf 'JOB_ENDPOINT=127.0.0.1:%s\nEXPANSION_SERVICE=127.0.0.1:%s\nFLINK_MASTER=%s\n' \
    "$job_port" "$expansion_port" "$master" | tee "$RUN_DIR/beam-services.env"
}

stop() {
  stop_service expansion-service
  stop_service flink-job-server
  rm -f "$RUN_DIR/beam-services.env"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) cat "$RUN_DIR/beam-services.env" ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
