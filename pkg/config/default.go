package config

// DefaultTOML is the commented default configuration `crid config default`
// prints. TestDefaultTOMLMatchesDefault keeps it equal to Default().
const DefaultTOML = `# crid configuration. Every key is optional; shown values are the defaults.
# Flags given on the command line override this file.

# CRI socket kubelet and crictl connect to (created with mode 0660).
listen = "/run/crid/crid.sock"
# Persistent data: metadata database, image content, snapshots.
root = "/var/lib/crid"
# Volatile state: bundles, shim sockets, network namespace pins.
state = "/run/crid"
# One of debug, info, warn, error.
log_level = "info"
# How pod and container cgroups are managed: cgroupfs or systemd.
cgroup_driver = "cgroupfs"
# Runtime handler used when a pod names none; must be a key of [runtimes].
default_runtime = "runc"
# Image whose process holds a pod's namespaces. Empty: crid's built-in infra
# process, so pods start without any image pull. (Only empty is supported
# for now; crid refuses to start with an image set.)
sandbox_image = ""
# Size in bytes of each pod's /dev/shm tmpfs.
shm_size = 67108864

[registry]
# Directory in containerd's certs.d layout: <dir>/<host>/hosts.toml with
# server, [host."URL"] capabilities, skip_verify, ca, override_path.
config_path = "/etc/crid/certs.d"
# Platform picked from multi-platform images: os/arch[/variant].
platform = "linux/amd64"
# Layers downloaded at once per pull.
max_concurrent_downloads = 4

[cni]
# The first network config (sorted by file name) in this directory is used.
conf_dir = "/etc/cni/net.d"
# Directories searched for CNI plugin binaries.
bin_dirs = ["/opt/cni/bin", "/usr/lib/cni"]

[stream]
# Address of the exec/attach/port-forward server; keep it on loopback
# unless kubelet runs elsewhere.
address = "127.0.0.1"
# 0 picks a free port.
port = 0
# Serve TLS when both are set.
tls_cert = ""
tls_key = ""
# Streams idle this long are closed.
idle_timeout = "4h0m0s"

[metrics]
# Prometheus metrics on host:port when set (use a loopback address).
address = ""

# OCI runtime handlers (Kubernetes RuntimeClass). Each names a
# runc-compatible binary; root is its state dir (default under state).
[runtimes.runc]
path = "runc"
root = ""
systemd_cgroup = false
`
