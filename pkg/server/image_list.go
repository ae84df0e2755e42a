package server

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/image"
	"github.com/crid-dev/crid/pkg/store"
)

// ListImages lists images; a filter's image spec narrows it to the image
// that reference names (none when unknown).
func (s *ImageService) ListImages(ctx context.Context, req *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	if ref := req.GetFilter().GetImage().GetImage(); ref != "" {
		img, err := s.images.Lookup(ref)
		if errdefs.IsNotFound(err) {
			return &runtime.ListImagesResponse{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list images %q: %w", ref, err)
		}
		ci, err := s.criImage(img)
		if err != nil {
			return nil, err
		}
		return &runtime.ListImagesResponse{Images: []*runtime.Image{ci}}, nil
	}
	images, err := s.images.List()
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	resp := &runtime.ListImagesResponse{}
	for _, img := range images {
		ci, err := s.criImage(img)
		if err != nil {
			return nil, err
		}
		resp.Images = append(resp.Images, ci)
	}
	return resp, nil
}

// criImage converts an image record to CRI's Image, with the user from its config.
func (s *ImageService) criImage(img *store.Image) (*runtime.Image, error) {
	cfg, err := s.images.Config(img)
	if err != nil {
		return nil, err
	}
	ci := &runtime.Image{
		Id:          img.ID,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        uint64(img.Size),
		Spec:        &runtime.ImageSpec{Image: img.ID},
		Pinned:      img.Pinned,
	}
	uid, name := image.User(cfg)
	if uid != nil {
		ci.Uid = &runtime.Int64Value{Value: *uid}
	}
	ci.Username = name
	return ci, nil
}
