# Helpers for the start/stop scripts of deploy/local/ (sourced). Every service:
#  - listens on 127.0.0.1 only, on a port given by the caller or found free here;
#  - runs in its own process group (setsid), its pid in $RUN_DIR/<name>.pid, its log in $RUN_DIR/<name>.log;
#  - is stopped by killing that process group: TERM, then KILL after a grace period.
source "$(dirname "${BASH_SOURCE[0]}")/versions.sh"

RUN_DIR="${RUN_DIR:-$REPO_ROOT/out/local-services}"
mkdir -p "$RUN_DIR"

# Flink 1.16 predates Java 17 support: open the JDK internals it reflects on (the list Flink 1.18+ ships).
JAVA_OPENS=(-XX:+IgnoreUnrecognizedVMOptions
  --add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
  --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED
  --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED
  --add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens=java.base/java.text=ALL-UNNAMED --add-opens=java.base/java.time=ALL-UNNAMED
  --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED)

free_ports() {  # $1 how many: distinct free ports, every one held until all are chosen
  # Asked one at a time, the kernel may hand the same port out twice before any service has bound
  # it: the KafkaIO expansion service and the job server's own expansion service were once both
  # given 52473, the job server failed to start, and the job endpoint answered "Method not found:
  # JobService/...".
  python3 -c 'import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))' "$1"
}

port_in_use() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

require_free_port() {  # $1 port, $2 what for
  if port_in_use "$1"; then
    echo "port $1 ($2) is already in use on 127.0.0.1: pick another one" >&2
    exit 1
  fi
}

is_running() {  # $1 name
  local pidfile="$RUN_DIR/$1.pid"
  [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start_service() {  # $1 name, then the command
  local name="$1"; shift
  if is_running "$name"; then
    echo "$name is already running (pid $(cat "$RUN_DIR/$name.pid"))" >&2
    return 0
  fi
  setsid "$@" >"$RUN_DIR/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN_DIR/$name.pid"
}

wait_for_port() {  # $1 name, $2 port, $3 timeout seconds
  local name="$1" port="$2" deadline=$((SECONDS + ${3:-60}))
  until port_in_use "$port"; do
    if ! is_running "$name"; then
      echo "$name exited before listening on $port; last lines of $RUN_DIR/$name.log:" >&2
      tail -20 "$RUN_DIR/$name.log" >&2
      exit 1
    fi
    if ((SECONDS > deadline)); then
      echo "$name is not listening on $port after ${3:-60}s; see $RUN_DIR/$name.log" >&2
      exit 1
    fi
    sleep 0.5
  done
}

stop_service() {  # $1 name: TERM the process group, KILL it after 15 s
  local name="$1" pidfile="$RUN_DIR/$1.pid"
  [[ -f "$pidfile" ]] || return 0
  local pid; pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.3; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

classpath_of() {  # $1 dir with classpath.txt from fetch.sh
  [[ -f "$1/classpath.txt" ]] || { echo "missing $1/classpath.txt: run deploy/local/fetch.sh" >&2; exit 1; }
  cat "$1/classpath.txt"
}

# What demo-flink and restart-flink start (Kafka, a Flink session cluster, the Beam services), stopped.
stop_stream_services() {
  "$REPO_ROOT/deploy/local/beam-services.sh" stop || true
  "$REPO_ROOT/deploy/local/flink-cluster.sh" stop || true
  "$REPO_ROOT/deploy/local/kafka.sh" stop || true
}

# Stop what the script started when it ends, also when interrupted (Ctrl-C, a timeout): bash runs no
# EXIT trap for a signal it does not trap itself.
stop_stream_services_on_exit() {
  trap stop_stream_services EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
