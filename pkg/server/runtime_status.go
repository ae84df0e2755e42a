package server

import (
	"context"
	"encoding/json"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/store"
)

// Status reports RuntimeReady and NetworkReady; verbose adds the config.
func (s *RuntimeService) Status(ctx context.Context, req *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	runtimeReady := &runtime.RuntimeCondition{Type: runtime.RuntimeReady, Status: true}
	networkReady := &runtime.RuntimeCondition{Type: runtime.NetworkReady, Status: true}
	if ok, reason, msg := s.network.Ready(); !ok {
		networkReady.Status, networkReady.Reason, networkReady.Message = false, reason, msg
	}
	resp := &runtime.StatusResponse{
		Status: &runtime.RuntimeStatus{Conditions: []*runtime.RuntimeCondition{runtimeReady, networkReady}},
	}
	for _, name := range s.cfg.HandlerNames() {
		resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtime.RuntimeHandler{Name: name, Features: &runtime.RuntimeHandlerFeatures{}})
	}
	// kubelet treats the handler with an empty name as the default one.
	resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtime.RuntimeHandler{Features: &runtime.RuntimeHandlerFeatures{}})
	if req.GetVerbose() {
		cfg, err := json.Marshal(s.cfg)
		if err != nil {
			return nil, fmt.Errorf("encode config for verbose status: %w", err)
		}
		var podCIDR string
		if err := s.db.View(func(tx *store.Tx) error { podCIDR = tx.PodCIDR(); return nil }); err != nil {
			return nil, fmt.Errorf("read pod CIDR for verbose status: %w", err)
		}
		resp.Info = map[string]string{"config": string(cfg), "podCIDR": podCIDR}
	}
	return resp, nil
}
