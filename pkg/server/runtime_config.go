package server

import (
	"context"
	"fmt"
	"net"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/store"
)

// RuntimeConfig tells kubelet which cgroup driver crid uses, so the two agree.
func (s *RuntimeService) RuntimeConfig(ctx context.Context, req *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	driver := runtime.CgroupDriver_CGROUPFS
	if s.cfg.CgroupDriver == "systemd" {
		driver = runtime.CgroupDriver_SYSTEMD
	}
	return &runtime.RuntimeConfigResponse{Linux: &runtime.LinuxRuntimeConfiguration{CgroupDriver: driver}}, nil
}

// UpdateRuntimeConfig stores the node's pod CIDR for the CNI ipRanges
// capability. Other fields of RuntimeConfig are ignored, as in other runtimes.
func (s *RuntimeService) UpdateRuntimeConfig(ctx context.Context, req *runtime.UpdateRuntimeConfigRequest) (*runtime.UpdateRuntimeConfigResponse, error) {
	cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if cidr == "" {
		return &runtime.UpdateRuntimeConfigResponse{}, nil
	}
	// kubelet may send a comma-separated dual-stack list.
	for _, c := range strings.Split(cidr, ",") {
		if _, _, err := net.ParseCIDR(c); err != nil {
			return nil, invalid("UpdateRuntimeConfig: pod CIDR %q is not a CIDR: %v", c, err)
		}
	}
	if err := s.db.Update(func(tx *store.Tx) error { return tx.SetPodCIDR(cidr) }); err != nil {
		return nil, fmt.Errorf("store pod CIDR %q: %w", cidr, err)
	}
	s.log.Info("pod CIDR updated", "cidr", cidr)
	return &runtime.UpdateRuntimeConfigResponse{}, nil
}
