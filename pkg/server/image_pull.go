package server

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/image/registry"
)

// PullImage pulls an image and returns its ID, sha256:<config digest>.
// Concurrent pulls of one image share the work.
func (s *ImageService) PullImage(ctx context.Context, req *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("PullImage: image reference is empty")
	}
	var creds *registry.Credentials
	if a := req.GetAuth(); a != nil {
		creds = &registry.Credentials{
			Username: a.Username, Password: a.Password, Auth: a.Auth,
			IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken,
		}
	}
	img, err := s.images.Pull(ctx, ref, creds)
	if err != nil {
		return nil, fmt.Errorf("pull image %q: %w", ref, err)
	}
	return &runtime.PullImageResponse{ImageRef: img.ID}, nil
}
