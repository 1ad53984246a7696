#!/usr/bin/env bash
# A real Prometheus server and promtool for Guetteur's tests and local runs, taken from Debian's own
# `prometheus` package — unpacked into .cache/ (git-ignored), never installed: no system service is
# created or started, nothing outside the repository changes. Idempotent.
#
#   deploy/local/prometheus.sh install            fetch + unpack if needed; prints the bin directory
#   deploy/local/prometheus.sh run [PORT]         a Prometheus on 127.0.0.1:PORT (default 9090) with
#                                                 deploy/prometheus/prometheus.yml, data in .cache/
#   deploy/local/prometheus.sh check              promtool check config + rules, promtool test rules
#
# Needs apt-get and dpkg-deb (Debian, Ubuntu). `apt-get download` checks the package against the
# signed archive index; on a fresh machine with no index yet it runs `apt-get update` (as root).
# PROMETHEUS_BIN_DIR=/usr/bin uses binaries installed some other way instead.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${GUETTEUR_CACHE:-$REPO_ROOT/.cache}"
DEST="$CACHE/prometheus"
BIN="${PROMETHEUS_BIN_DIR:-$DEST/usr/bin}"
CONFIG_DIR="$REPO_ROOT/deploy/prometheus"

log() { echo "prometheus.sh: $*" >&2; }

installed() {
  [[ -x "$BIN/prometheus" && -x "$BIN/promtool" ]] && "$BIN/promtool" --version >/dev/null 2>&1
}

download_deb() {  # $1 directory -> the .deb in it
  local dir="$1"
  if (cd "$dir" && apt-get download prometheus) >"$dir/apt.log" 2>&1; then return 0; fi
  if [[ $(id -u) -ne 0 ]]; then
    cat "$dir/apt.log" >&2
    log "apt-get download failed and the package index can only be refreshed as root (apt-get update)"
    return 1
  fi
  log "no usable package index: apt-get update"
  apt-get update -qq >"$dir/apt-update.log" 2>&1 || { cat "$dir/apt-update.log" >&2; return 1; }
  (cd "$dir" && apt-get download prometheus) >"$dir/apt.log" 2>&1 || { cat "$dir/apt.log" >&2; return 1; }
}

install() {
  if installed; then echo "$BIN"; return 0; fi
  if [[ -n "${PROMETHEUS_BIN_DIR:-}" ]]; then
    log "PROMETHEUS_BIN_DIR=$PROMETHEUS_BIN_DIR holds no working prometheus + promtool"; exit 1
  fi
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
    || { log "needs apt-get and dpkg-deb (Debian's prometheus package), or PROMETHEUS_BIN_DIR"; exit 1; }
  mkdir -p "$CACHE"
  local work
  work="$(mktemp -d "$CACHE/prometheus-deb.XXXXXX")"
  trap 'rm -rf "$work"' RETURN
  # apt fetches as the unprivileged _apt user when it can write the target directory.
  if [[ $(id -u) -eq 0 ]] && id _apt >/dev/null 2>&1; then chown _apt "$work"; fi
  log "fetching Debian's prometheus package"
  download_deb "$work"
  local deb
  deb="$(ls "$work"/prometheus_*.deb)"
  rm -rf "$DEST.partial"
  dpkg-deb -x "$deb" "$DEST.partial"
  dpkg-deb -f "$deb" Version >"$DEST.partial/VERSION"
  rm -rf "$DEST" && mv "$DEST.partial" "$DEST"
  installed || { log "unpacked, but $BIN/promtool does not run"; exit 1; }
  log "prometheus $(cat "$DEST/VERSION") in $BIN"
  echo "$BIN"
}

run() {
  local port="${1:-9090}"
  install >/dev/null
  mkdir -p "$CACHE/prometheus-data"
  log "http://127.0.0.1:$port  (config $CONFIG_DIR/prometheus.yml, data $CACHE/prometheus-data)"
  exec "$BIN/prometheus" --config.file="$CONFIG_DIR/prometheus.yml" \
    --web.listen-address="127.0.0.1:$port" --storage.tsdb.path="$CACHE/prometheus-data"
}

check() {
  install >/dev/null
  "$BIN/promtool" check config "$CONFIG_DIR/prometheus.yml"
  "$BIN/promtool" check rules "$CONFIG_DIR"/rules/*.yml
  "$BIN/promtool" test rules "$CONFIG_DIR"/tests/*.yml
}

case "${1:-install}" in
  install) install ;;
  run) shift; run "$@" ;;
  check) check ;;
  *) echo "usage: $0 [install|run [PORT]|check]" >&2; exit 2 ;;
esac
