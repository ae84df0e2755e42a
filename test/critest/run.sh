#!/usr/bin/env bash
# Runs cri-tools' critest conformance suite against a private crid.
#
#   test/critest/run.sh CRITEST_BIN [GINKGO_FOCUS] [GINKGO_SKIP]
#
# CRITEST_BIN is a critest binary built from kubernetes-sigs/cri-tools
# (outside this repository). Everything runs on this machine: crid gets
# temporary dirs and a private CNI bridge, and its registry config sends
# every host to a local docker-registry (hack/registry.sh) holding the
# images critest pulls, so no request leaves 127.0.0.1.
set -euo pipefail

critest=${1:?usage: $0 CRITEST_BIN [GINKGO_FOCUS] [GINKGO_SKIP]}
focus=${2:-'Runtime info|PodSandbox|Image Manager|runtime should support'}
skip=${3:-'digest|timeout|container|Container|streaming|Streaming'}
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

work=$(mktemp -d /tmp/crid-critest-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
bridge="cridct$((RANDOM % 1000))"
crid_pid=""
forward=$(cat /proc/sys/net/ipv4/ip_forward)

cleanup() {
  set +e
  if [ -n "$crid_pid" ]; then
    kill -TERM "$crid_pid" 2>/dev/null
    wait "$crid_pid" 2>/dev/null
  fi
  # Infra processes of pods the suite did not remove name crid's state dir.
  for p in /proc/[0-9]*; do
    case "$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)" in
    "crid-infra infra --state $work/state "*) kill -9 "${p#/proc/}" ;;
    esac
  done
  awk -v w="$work" '$5 ~ "^"w {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l
  "$repo/hack/registry.sh" stop "$work/registry" >/dev/null
  ip link del "$bridge" 2>/dev/null
  rm -rf "$work"
  # The bridge plugin (isGateway) switches forwarding on; put it back.
  echo "$forward" >/proc/sys/net/ipv4/ip_forward
}
trap cleanup EXIT

make -C "$repo" build >/dev/null
"$repo/hack/registry.sh" start "$work/registry" "$port" >/dev/null
(cd "$repo" && go run ./hack/mkimages -registry "127.0.0.1:$port" -critest >/dev/null)

mkdir -p "$work/cni" "$work/certs.d/_default"
cat >"$work/cni/10-critest.conflist" <<JSON
{"cniVersion":"1.0.0","name":"crid-critest","plugins":[
 {"type":"bridge","bridge":"$bridge","isGateway":true,"ipMasq":false,
  "ipam":{"type":"host-local","ranges":[[{"subnet":"10.197.$((RANDOM % 250)).0/24"}]],"dataDir":"$work/ipam"}},
 {"type":"portmap","capabilities":{"portMappings":true}},
 {"type":"loopback"}]}
JSON
printf 'server = "http://127.0.0.1:%s"\n' "$port" >"$work/certs.d/_default/hosts.toml"
cat >"$work/config.toml" <<TOML
listen = "$work/crid.sock"
root = "$work/root"
state = "$work/state"
[registry]
config_path = "$work/certs.d"
[cni]
conf_dir = "$work/cni"
TOML
"$repo/bin/crid" --config "$work/config.toml" >"$work/crid.log" 2>&1 &
crid_pid=$!
for _ in $(seq 100); do [ -S "$work/crid.sock" ] && break; sleep 0.1; done

rc=0
"$critest" -runtime-endpoint "unix://$work/crid.sock" -image-endpoint "unix://$work/crid.sock" \
  -ginkgo.focus "$focus" -ginkgo.skip "$skip" -ginkgo.no-color || rc=$?
echo "crid log: last lines"
tail -5 "$work/crid.log"
exit $rc
