package server

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RemoveImage removes an image by ID, tag or digest. Removing one of several
// tags only untags; layers no image uses any more are deleted.
func (s *ImageService) RemoveImage(ctx context.Context, req *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("RemoveImage: image reference is empty")
	}
	// RemoveImage is idempotent: an image that is not there is success.
	if err := s.images.Remove(ctx, ref); err != nil {
		return nil, fmt.Errorf("remove image %q: %w", ref, err)
	}
	return &runtime.RemoveImageResponse{}, nil
}
