package server

import (
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageService serves runtime.v1.ImageService; RPCs not built yet answer
// Unimplemented.
type ImageService struct {
	runtime.UnimplementedImageServiceServer
}
