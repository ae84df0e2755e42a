package image

import (
	"fmt"

	"github.com/distribution/reference"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// Ref is a normalized image reference: Name is the fully qualified
// repository (docker.io/library/busybox); Tag and Digest as given, at least
// one of them set (a bare name gets tag "latest").
type Ref struct {
	Named  reference.Named
	Name   string
	Tag    string
	Digest string
}

// String is the canonical form: name:tag, name@digest or name:tag@digest.
func (r Ref) String() string { return r.Named.String() }

// TagRef is name:tag, or "" when the reference has no tag.
func (r Ref) TagRef() string {
	if r.Tag == "" {
		return ""
	}
	return r.Name + ":" + r.Tag
}

// ParseRef normalizes s the way kubelet and docker do: "busybox" becomes
// docker.io/library/busybox:latest. Malformed references are InvalidArgument.
func ParseRef(s string) (Ref, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Ref{}, fmt.Errorf("image reference %q: %v: %w", s, err, errdefs.ErrInvalidArgument)
	}
	named = reference.TagNameOnly(named)
	r := Ref{Named: named, Name: named.Name()}
	if t, ok := named.(reference.Tagged); ok {
		r.Tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		r.Digest = d.Digest().String()
		if err := d.Digest().Validate(); err != nil {
			return Ref{}, fmt.Errorf("image reference %q: %v: %w", s, err, errdefs.ErrInvalidArgument)
		}
	}
	return r, nil
}
