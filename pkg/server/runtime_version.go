package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	// RuntimeName is what Version reports and crictl prints.
	RuntimeName = "crid"
	// kubeAPIVersion is the version of the kubelet runtime API served.
	kubeAPIVersion = "0.1.0"
	// criAPIVersion is the CRI version implemented.
	criAPIVersion = "v1"
)

// Version returns the runtime name, crid's version and the CRI API version.
func (s *RuntimeService) Version(ctx context.Context, req *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return &runtime.VersionResponse{
		Version:           kubeAPIVersion,
		RuntimeName:       RuntimeName,
		RuntimeVersion:    s.version,
		RuntimeApiVersion: criAPIVersion,
	}, nil
}
