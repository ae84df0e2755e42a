// Package netns creates, enters and removes pinned network namespaces for
// pod sandboxes, and attaches them to the pod network through CNI (libcni).
//
// A pinned namespace is a bind mount of a namespace file onto an empty file
// (<pinDir>/<name>), so it outlives the thread that created it and survives
// a crid restart; Remove unmounts and deletes the pin. The CNI Manager loads
// the first network configuration of a directory, reloads it when it changes,
// and runs ADD/DEL/CHECK with the Kubernetes runtime arguments (K8S_POD_*,
// port mappings, bandwidth, DNS, IP ranges). libcni's result cache lives in
// a directory crid owns, so DEL works after a restart even when the config
// or the namespace is gone.
package netns
