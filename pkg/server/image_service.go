package server

import (
	"log/slog"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/image"
)

// ImageService serves runtime.v1.ImageService over pkg/image.
type ImageService struct {
	runtime.UnimplementedImageServiceServer

	images *image.Service
	log    *slog.Logger
}

// NewImageService wires an ImageService.
func NewImageService(images *image.Service, log *slog.Logger) *ImageService {
	return &ImageService{images: images, log: log}
}
