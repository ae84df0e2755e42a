package server

import (
	"context"
	"encoding/json"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// ImageStatus returns the image a reference names, or an empty response
// (not an error) when there is none, as the CRI contract says.
func (s *ImageService) ImageStatus(ctx context.Context, req *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("ImageStatus: image reference is empty")
	}
	img, err := s.images.Lookup(ref)
	if errdefs.IsNotFound(err) {
		return &runtime.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image status %q: %w", ref, err)
	}
	ci, err := s.criImage(img)
	if err != nil {
		return nil, err
	}
	resp := &runtime.ImageStatusResponse{Image: ci}
	if req.GetVerbose() {
		cfg, err := s.images.Config(img)
		if err != nil {
			return nil, err
		}
		dirs, err := s.images.SnapshotDirs(img)
		if err != nil {
			return nil, err
		}
		info, err := json.Marshal(map[string]any{
			"snapshotDirs":   dirs,
			"imageSpec":      cfg,
			"manifestDigest": img.ManifestDigest,
			"chainIDs":       img.ChainIDs,
		})
		if err != nil {
			return nil, fmt.Errorf("encode image %s info: %w", img.ID, err)
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}
