#!/usr/bin/env bash
# Starts or stops Debian's docker-registry (distribution 2.8) on 127.0.0.1
# for crid's tests and benchmarks.
#
#   hack/registry.sh start DIR PORT [HTPASSWD_FILE]
#       Listens on 127.0.0.1:PORT only; storage in DIR/storage (delete
#       enabled, no descriptor cache, so tests may overwrite a stored blob
#       under DIR/storage/docker/registry/v2/blobs/sha256/XX/HEX/data to make
#       the registry serve corrupt content); basic auth (realm crid-test)
#       when HTPASSWD_FILE is given (`htpasswd -Bbn user pass`). Pid in
#       DIR/registry.pid, log in DIR/registry.log, config in DIR/config.yml.
#       Returns once GET /v2/ answers 200 (401 with auth); the registry keeps
#       running detached (setsid). Starting a running registry is a no-op.
#   hack/registry.sh stop DIR
#       Kills exactly the pid in DIR/registry.pid (if it is still this
#       registry) and waits for it to exit. Stopping a stopped one is a no-op.
#   hack/registry.sh status DIR
#       Exits 0 and prints the pid if the registry of DIR is running.
set -euo pipefail

usage() { echo "usage: $0 start DIR PORT [HTPASSWD_FILE] | stop DIR | status DIR" >&2; exit 2; }

cmd=${1:-}
[ -n "${2:-}" ] || usage
mkdir -p "$2"
dir=$(cd "$2" && pwd)
pidfile=$dir/registry.pid
config=$dir/config.yml
log=$dir/registry.log
bin=${DOCKER_REGISTRY:-/usr/bin/docker-registry}

# pid prints the recorded pid if that process is alive (not a zombie) and is
# the registry serving this DIR's config, so a recycled pid is never killed.
pid() {
  local p state
  [ -s "$pidfile" ] || return 1
  p=$(cat "$pidfile")
  [[ $p =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$p/cmdline" ] || return 1
  state=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || true)
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ] || return 1
  tr '\0' ' ' <"/proc/$p/cmdline" | grep -qF -- "$config" || return 1
  echo "$p"
}

# ready succeeds when a distribution registry answers on the port.
ready() {
  local code
  code=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "http://127.0.0.1:$1/v2/" || true)
  [ "$code" = 200 ] || [ "$code" = 401 ]
}

wait_ready() {
  local port=$1 i
  for i in $(seq 1 300); do
    if ! pid >/dev/null; then
      echo "registry exited; log:" >&2
      cat "$log" >&2 || true
      return 1
    fi
    if ready "$port"; then return 0; fi
    sleep 0.1
  done
  echo "registry did not answer on 127.0.0.1:$port within 30s; log:" >&2
  cat "$log" >&2 || true
  return 1
}

start() {
  local port=${1:-} htpasswd=${2:-} p i
  [[ $port =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ] && [ "$port" -lt 65536 ] || usage
  [ -x "$bin" ] || { echo "$bin not found (apt-get install docker-registry)" >&2; exit 1; }
  if [ -n "$htpasswd" ]; then
    [ -r "$htpasswd" ] || { echo "htpasswd file $htpasswd not readable" >&2; exit 1; }
    htpasswd=$(cd "$(dirname "$htpasswd")" && pwd)/$(basename "$htpasswd")
  fi
  # One start at a time per DIR; fd 9 is closed for the registry itself.
  exec 9>"$dir/registry.lock"
  flock 9
  if p=$(pid); then
    if ! grep -qF "addr: \"127.0.0.1:$port\"" "$config"; then
      echo "registry of $dir already running (pid $p) on another port: $(grep addr: "$config")" >&2
      exit 1
    fi
    wait_ready "$port"
    echo "registry already running (pid $p) on 127.0.0.1:$port"
    return 0
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "127.0.0.1:$port is already in use by another process" >&2
    exit 1
  fi
  mkdir -p "$dir/storage"
  {
    echo "version: 0.1"
    echo "log:"
    echo "  level: warn"
    echo "  formatter: text"
    echo "storage:"
    echo "  filesystem:"
    echo "    rootdirectory: \"$dir/storage\""
    echo "  delete:"
    echo "    enabled: true"
    echo "  redirect:"
    echo "    disable: true"
    echo "  maintenance:"
    echo "    uploadpurging:"
    echo "      enabled: false"
    echo "http:"
    echo "  addr: \"127.0.0.1:$port\""
    echo "  secret: \"crid-test-$port\""
    echo "  headers:"
    echo "    X-Content-Type-Options: [nosniff]"
    if [ -n "$htpasswd" ]; then
      echo "auth:"
      echo "  htpasswd:"
      echo "    realm: crid-test"
      echo "    path: \"$htpasswd\""
    fi
  } >"$config"
  rm -f "$pidfile" "$pidfile.new"
  # The child records its own pid after setsid, then becomes the registry.
  setsid sh -c 'echo $$ >"$1.new" && mv "$1.new" "$1" && exec "$2" serve "$3"' \
    sh "$pidfile" "$bin" "$config" </dev/null >"$log" 2>&1 9>&- &
  for i in $(seq 1 100); do
    [ -s "$pidfile" ] && break
    sleep 0.05
  done
  wait_ready "$port"
}

stop() {
  local p i
  p=$(pid) || { rm -f "$pidfile"; return 0; }
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 1 100); do
    pid >/dev/null || { rm -f "$pidfile"; return 0; }
    sleep 0.05
  done
  kill -KILL "$p" 2>/dev/null || true
  for i in $(seq 1 100); do
    pid >/dev/null || { rm -f "$pidfile"; return 0; }
    sleep 0.05
  done
  echo "registry pid $p did not exit" >&2
  return 1
}

case $cmd in
start) start "${3:-}" "${4:-}" ;;
stop) stop ;;
status) pid || { echo "not running" >&2; exit 1; } ;;
*) usage ;;
esac
