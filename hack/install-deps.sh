#!/usr/bin/env bash
# Installs what crid needs on a Debian machine, only what is missing:
# OCI runtimes, CNI plugins and iptables to run pods; docker-registry,
# busybox-static, htpasswd and curl for the test suite and benchmarks.
# Writes a default bridge network into the CNI conf dir only if it has none.
set -euo pipefail

CNI_CONF_DIR=${CNI_CONF_DIR:-/etc/cni/net.d}

# command -> package that provides it
declare -A want=(
  [runc]=runc
  [crun]=crun
  [iptables]=iptables
  [docker-registry]=docker-registry
  [busybox]=busybox-static
  [htpasswd]=apache2-utils
  [curl]=curl
  [ip]=iproute2
)
missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
[ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || missing+=(containernetworking-plugins)
# busybox from another package is dynamically linked; images need the static one.
if ! file_is_static=$(ldd /usr/bin/busybox 2>&1) || [[ "$file_is_static" != *"not a dynamic executable"* ]]; then
  missing+=(busybox-static)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  echo "install-deps: Go 1.26 is needed to build crid (https://go.dev/dl, into /usr/local/go)" >&2
  exit 1
fi

mkdir -p "$CNI_CONF_DIR"
if ! ls "$CNI_CONF_DIR" | grep -Eq '\.(conf|conflist|json)$'; then
  echo "install-deps: writing $CNI_CONF_DIR/10-crid-bridge.conflist"
  cat >"$CNI_CONF_DIR/10-crid-bridge.conflist" <<'JSON'
{
  "cniVersion": "1.0.0",
  "name": "crid",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "crid0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.88.0.0/16"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
JSON
fi
echo "install-deps: ok"
