package store

import "time"

// Image is a pulled image. ID is "sha256:<config digest>".
type Image struct {
	ID             string    `json:"id"`
	RepoTags       []string  `json:"repoTags,omitempty"`
	RepoDigests    []string  `json:"repoDigests,omitempty"`
	ManifestDigest string    `json:"manifestDigest"`
	IndexDigests   []string  `json:"indexDigests,omitempty"` // indexes pulled through, kept as content
	ConfigDigest   string    `json:"configDigest"`
	ChainIDs       []string  `json:"chainIDs"` // one per layer, bottom first
	Size           int64     `json:"size"`     // sum of compressed layer sizes
	Pinned         bool      `json:"pinned,omitempty"`
	CreatedAt      time.Time `json:"createdAt"`
}

// Snapshot is one unpacked layer directory, shared by every image whose
// layer chain passes through it.
type Snapshot struct {
	ChainID   string    `json:"chainID"`
	DiffID    string    `json:"diffID"`
	Parent    string    `json:"parent,omitempty"` // parent chain ID
	Dir       string    `json:"dir"`              // relative to the snapshots root
	Size      int64     `json:"size"`             // bytes on disk
	Inodes    int64     `json:"inodes"`
	CreatedAt time.Time `json:"createdAt"`
}

// State of a sandbox or container record. "creating" is written first, so a
// record found in that state at start is a half-done operation to roll back.
type State string

const (
	StateCreating State = "creating"
	StateReady    State = "ready"
	StateCreated  State = "created"
	StateRunning  State = "running"
	StateExited   State = "exited"
	StateNotReady State = "notready"
	StateUnknown  State = "unknown"
)

// Sandbox is a pod sandbox record. Config holds the CRI PodSandboxConfig as
// protobuf JSON so status can be answered without re-deriving it.
type Sandbox struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	Namespace      string            `json:"namespace"`
	UID            string            `json:"uid"`
	Attempt        uint32            `json:"attempt"`
	State          State             `json:"state"`
	RuntimeHandler string            `json:"runtimeHandler,omitempty"`
	CreatedAt      time.Time         `json:"createdAt"`
	Labels         map[string]string `json:"labels,omitempty"`
	Annotations    map[string]string `json:"annotations,omitempty"`
	NetNSPath      string            `json:"netnsPath,omitempty"`
	IP             string            `json:"ip,omitempty"`
	AdditionalIPs  []string          `json:"additionalIPs,omitempty"`
	CNIResult      []byte            `json:"cniResult,omitempty"`
	Pid            int               `json:"pid,omitempty"`
	PidStart       uint64            `json:"pidStart,omitempty"` // start time, tells a reused pid apart
	HostNetwork    bool              `json:"hostNetwork,omitempty"`
	NetworkDown    bool              `json:"networkDown,omitempty"` // CNI DEL done (stopped); not repeated on removal
	CgroupPath     string            `json:"cgroupPath,omitempty"`  // the infra's own cgroup, per hierarchy
	Config         []byte            `json:"config,omitempty"`
}

// User is a process's resolved identity.
type User struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
}

// Container is a container record; Config holds the CRI ContainerConfig as
// protobuf JSON.
type Container struct {
	ID          string            `json:"id"`
	SandboxID   string            `json:"sandboxID"`
	Name        string            `json:"name"`
	Attempt     uint32            `json:"attempt"`
	State       State             `json:"state"`
	ImageID     string            `json:"imageID"`
	ImageRef    string            `json:"imageRef,omitempty"`
	CreatedAt   time.Time         `json:"createdAt"`
	StartedAt   time.Time         `json:"startedAt,omitzero"`
	FinishedAt  time.Time         `json:"finishedAt,omitzero"`
	ExitCode    int32             `json:"exitCode,omitempty"`
	Reason      string            `json:"reason,omitempty"`
	Message     string            `json:"message,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	LogPath     string            `json:"logPath,omitempty"`
	Config      []byte            `json:"config,omitempty"`
	// RuntimeHandler is the pod's OCI runtime handler, fixed at create.
	RuntimeHandler string `json:"runtimeHandler,omitempty"`
	// ChainIDs are the layer snapshots the container uses (its image's,
	// bottom first, then those of its image volumes): they stay on disk
	// while the container exists, even if the images are removed.
	ChainIDs []string `json:"chainIDs,omitempty"`
	Pid      int      `json:"pid,omitempty"`     // the container's init on the host
	ShimPid  int      `json:"shimPid,omitempty"` // its shim
	// User is who the container's process runs as, resolved at create.
	User *User `json:"user,omitempty"`
	// StopSignal is the signal StopContainer sends first (CRI config, else
	// the image's STOPSIGNAL, else SIGTERM).
	StopSignal int `json:"stopSignal,omitempty"`
}
