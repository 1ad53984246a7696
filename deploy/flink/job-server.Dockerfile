# Beam's Flink job server + KafkaIO expansion service, from the same pinned Maven classpath that
# deploy/local/fetch.sh resolves for the tests (no shaded job-server jar is needed).
#   docker build -f deploy/flink/job-server.Dockerfile -t guetteur/beam-flink-job-server:2.54.0-flink1.16 .
FROM maven:3.9-eclipse-temurin-17 AS fetch
WORKDIR /src
COPY deploy/local/versions.sh deploy/local/fetch.sh deploy/local/
COPY deploy/kafka-read deploy/kafka-read
RUN GUETTEUR_CACHE=/opt/beam deploy/local/fetch.sh flink-runner

FROM eclipse-temurin:17-jre
COPY --from=fetch /opt/beam /opt/beam
# The runner's classpath and Guetteur's event-time Kafka read (deploy/kafka-read/, built by fetch.sh).
RUN dir="$(ls -d /opt/beam/beam-flink-*)" && echo "$(cat "$dir/classpath.txt"):$(ls "$dir"/guetteur-kafka-read-*.jar)" \
      >/opt/beam/classpath.txt
COPY <<'SH' /usr/local/bin/entrypoint
#!/bin/sh
set -e
CP="$(cat /opt/beam/classpath.txt)"
case "$1" in
  job-server) shift; exec java -cp "$CP" org.apache.beam.runners.flink.FlinkJobServerDriver \
      --job-host 0.0.0.0 --job-port 8099 --artifact-port 8098 --expansion-port 8096 "$@" ;;
  expansion-service) shift; exec java -cp "$CP" org.apache.beam.sdk.expansion.service.ExpansionService 8097 \
      --defaultEnvironmentType=EMBEDDED --experiments=use_deprecated_read "$@" ;;
  *) exec "$@" ;;
esac
SH
RUN chmod +x /usr/local/bin/entrypoint
ENTRYPOINT ["/usr/local/bin/entrypoint"]
