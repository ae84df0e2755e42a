#!/usr/bin/env bash
# Starts or stops Debian's docker-registry on 127.0.0.1 for tests.
#   hack/registry.sh start DIR PORT [HTPASSWD_FILE]   (returns once it answers)
#   hack/registry.sh stop DIR
set -euo pipefail

cmd=${1:?usage: registry.sh start DIR PORT [HTPASSWD] | stop DIR}
dir=${2:?registry dir}
mkdir -p "$dir"
pidfile=$dir/registry.pid

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case $cmd in
start)
  port=${3:?port}
  htpasswd=${4:-}
  if running; then echo "registry already running (pid $(cat "$pidfile"))"; exit 0; fi
  mkdir -p "$dir/storage"
  {
    echo "version: 0.1"
    echo "log: {level: warn}"
    echo "storage:"
    echo "  filesystem: {rootdirectory: $dir/storage}"
    echo "  delete: {enabled: true}"
    echo "http:"
    echo "  addr: 127.0.0.1:$port"
    if [ -n "$htpasswd" ]; then
      echo "auth:"
      echo "  htpasswd: {realm: crid-test, path: $htpasswd}"
    fi
  } >"$dir/config.yml"
  setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
    if [ "$code" = 200 ] || [ "$code" = 401 ]; then exit 0; fi
    if ! running; then echo "registry exited:"; cat "$dir/registry.log"; exit 1; fi
    sleep 0.1
  done
  echo "registry did not answer on 127.0.0.1:$port"; cat "$dir/registry.log"; exit 1
  ;;
stop)
  if running; then
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  ;;
*) echo "unknown command $cmd"; exit 2 ;;
esac
