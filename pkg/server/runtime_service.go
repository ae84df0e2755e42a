// Package server implements the CRI v1 RuntimeService and ImageService: it
// validates requests and translates between CRI messages and crid's domain
// packages. One file per group of RPCs; the real work lives elsewhere.
package server

import (
	"log/slog"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/sandbox"
	"github.com/crid-dev/crid/pkg/store"
	"github.com/crid-dev/crid/pkg/stream"
)

// NetworkStatus reports whether pod networking can be set up.
type NetworkStatus interface {
	// Ready returns false with a CRI reason and a message while it cannot.
	Ready() (ready bool, reason, message string)
}

// RuntimeService serves runtime.v1.RuntimeService. RPCs not built yet fall
// through to the embedded type, which answers Unimplemented.
type RuntimeService struct {
	runtime.UnimplementedRuntimeServiceServer

	cfg        *config.Config
	db         *store.DB
	network    NetworkStatus
	sandboxes  *sandbox.Manager
	containers *container.Manager
	stream     *stream.Server
	version    string
	log        *slog.Logger
}

// RuntimeDeps is what the RuntimeService needs.
type RuntimeDeps struct {
	Config     *config.Config
	DB         *store.DB
	Network    NetworkStatus
	Sandboxes  *sandbox.Manager
	Containers *container.Manager
	Stream     *stream.Server
	Version    string // crid's build version
	Log        *slog.Logger
}

// NewRuntimeService wires a RuntimeService.
func NewRuntimeService(d RuntimeDeps) *RuntimeService {
	return &RuntimeService{cfg: d.Config, db: d.DB, network: d.Network, sandboxes: d.Sandboxes, containers: d.Containers, stream: d.Stream, version: d.Version, log: d.Log}
}
