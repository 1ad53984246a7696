#!/usr/bin/env bash
# A single-node Kafka broker in KRaft mode (no ZooKeeper, no Docker), from Maven Central jars.
#
#   deploy/local/kafka.sh start            # KAFKA_PORT, KAFKA_CONTROLLER_PORT: free ports if unset
#   deploy/local/kafka.sh topics T1 T2...  # create topics (1 partition) on the running broker
#   deploy/local/kafka.sh stop             # stop it and delete its data
#   deploy/local/kafka.sh env              # BOOTSTRAP=127.0.0.1:port of the running broker
#
# Listens on 127.0.0.1 only. Records keep their producer-set CreateTime, and retention is off:
# a replayed past month must not be deleted as "older than 7 days" while it is being read.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATA="$RUN_DIR/kafka-data"

start() {
  "$REPO_ROOT/deploy/local/fetch.sh" kafka
  local cp; cp="$(classpath_of "$KAFKA_DIR")"
  local free; read -r -a free <<<"$(free_ports 2)"
  local port="${KAFKA_PORT:-${free[0]}}" cport="${KAFKA_CONTROLLER_PORT:-${free[1]}}"
  require_free_port "$port" "Kafka broker"
  require_free_port "$cport" "Kafka controller"
  rm -rf "$DATA" && mkdir -p "$DATA/logs"
  cat >"$RUN_DIR/kafka-server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA/logs
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.message.timestamp.type=CreateTime
log.retention.ms=-1
log.retention.bytes=-1
PROPS
  cat >"$RUN_DIR/kafka-log4j.properties" <<PROPS
log4j.rootLogger=WARN, stdout
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
PROPS
  local log4j="-Dlog4j.configuration=file:$RUN_DIR/kafka-log4j.properties"
  # A KRaft cluster id is 16 random bytes in URL-safe base64; one in 64 starts with '-', which the
  # storage tool's argument parser takes for an option ("--cluster-id: expected one argument").
  local cluster_id; cluster_id="$(python3 -c 'import base64, uuid
while True:
    cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not cid.startswith("-"):
        break
print(cid)')"
  java "$log4j" -cp "$cp" kafka.tools.StorageTool format -t "$cluster_id" \
    -c "$RUN_DIR/kafka-server.properties" >"$RUN_DIR/kafka-format.log" 2>&1 \
    || { cat "$RUN_DIR/kafka-format.log" >&2; exit 1; }
  start_service kafka java ${KAFKA_HEAP_OPTS:--Xmx1g} "$log4j" -cp "$cp" kafka.Kafka "$RUN_DIR/kafka-server.properties"
  wait_for_port kafka "$port" 120
  printf 'BOOTSTRAP=127.0.0.1:%s\n' "$port" | tee "$RUN_DIR/kafka.env"
}

topics() {
  local cp; cp="$(classpath_of "$KAFKA_DIR")"
  local bootstrap; bootstrap="$(sed -n 's/^BOOTSTRAP=//p' "$RUN_DIR/kafka.env")"
  for topic in "$@"; do
    java -Dlog4j.configuration="file:$RUN_DIR/kafka-log4j.properties" -cp "$cp" org.apache.kafka.tools.TopicCommand \
      --bootstrap-server "$bootstrap" --create --if-not-exists --topic "$topic" --partitions 1 --replication-factor 1 \
      --config retention.ms=-1 >&2
  done
}

stop() {
  stop_service kafka
  rm -rf "$DATA" "$RUN_DIR/kafka.env"
}

case "${1:-}" in
  start) start ;;
  topics) shift; topics "$@" ;;
  stop) stop ;;
  env) cat "$RUN_DIR/kafka.env" ;;
  *) echo "usage: $0 start|topics T...|stop|env" >&2; exit 2 ;;
esac
