# Pinned versions of everything deploy/local/ downloads into .cache/ (sourced by the other scripts).
#
# Beam's Flink runner: the Python SDK is 2.77.0, but the Maven repository this project can reach
# serves no beam-runners-flink-*-job-server jar at all and no Flink runner newer than
# org.apache.beam:beam-runners-flink-1.16:2.59.0 (and its job-service dependency only up to a
# consistent 2.54.0 set). The job server is therefore assembled from the runner *library* and its
# dependencies (mvn dependency:build-classpath), Beam Java 2.54.0 on Flink 1.16. Python 2.77 talks
# to it over the portable Job/Fn API, which is stable across these versions (tested by make test).
# When the repository serves a newer runner, change the versions here (the artifact name follows the Flink minor).
BEAM_JAVA_VERSION="${BEAM_JAVA_VERSION:-2.54.0}"
BEAM_FLINK_MAJOR="${BEAM_FLINK_MAJOR:-1.16}"
# The session cluster (JobManager + TaskManager) comes from the apache-flink-libraries PyPI archive,
# same Flink minor as the runner.
FLINK_VERSION="${FLINK_VERSION:-1.16.3}"
# Kafka broker (KRaft) and the kafka-clients KafkaIO runs with.
KAFKA_VERSION="${KAFKA_VERSION:-3.9.1}"
KAFKA_SCALA="2.13"
# Prism, Beam's portable local runner, built from the Go module of the same Beam release as the SDK.
PRISM_VERSION="${PRISM_VERSION:-v2.77.0}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${GUETTEUR_CACHE:-$REPO_ROOT/.cache}"
M2_REPO="$CACHE/m2"
BEAM_FLINK_DIR="$CACHE/beam-flink-$BEAM_FLINK_MAJOR-$BEAM_JAVA_VERSION-kafka-$KAFKA_VERSION"
KAFKA_DIR="$CACHE/kafka-$KAFKA_SCALA-$KAFKA_VERSION"
FLINK_HOME_DIR="$CACHE/flink-$FLINK_VERSION"
PRISM_BIN="$CACHE/bin/prism-$PRISM_VERSION"
# Guetteur's own event-time Kafka read (deploy/kafka-read/), built by fetch.sh flink-runner.
KAFKA_READ_JAR="$BEAM_FLINK_DIR/guetteur-kafka-read-$(cat "$REPO_ROOT"/deploy/kafka-read/src/guetteur/kafka/*.java "$REPO_ROOT"/deploy/kafka-read/META-INF/services/* | cksum | cut -d' ' -f1).jar"
