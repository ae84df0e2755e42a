package image

import (
	"errors"
	"testing"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestParseRef(t *testing.T) {
	const dg = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	cases := []struct {
		in, str, name, tag, digest string
	}{
		{"busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox", "latest", ""},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "docker.io/library/busybox", "1.36", ""},
		{"user/app", "docker.io/user/app:latest", "docker.io/user/app", "latest", ""},
		{"127.0.0.1:5000/crid-test/busybox:latest", "127.0.0.1:5000/crid-test/busybox:latest", "127.0.0.1:5000/crid-test/busybox", "latest", ""},
		{"localhost/x", "localhost/x:latest", "localhost/x", "latest", ""},
		{"busybox@" + dg, "docker.io/library/busybox@" + dg, "docker.io/library/busybox", "", dg},
		{"quay.io/a/b:v1@" + dg, "quay.io/a/b:v1@" + dg, "quay.io/a/b", "v1", dg},
	}
	for _, tc := range cases {
		r, err := ParseRef(tc.in)
		if err != nil {
			t.Errorf("ParseRef(%q): %v", tc.in, err)
			continue
		}
		if r.String() != tc.str || r.Name != tc.name || r.Tag != tc.tag || r.Digest != tc.digest {
			t.Errorf("ParseRef(%q) = %q name=%q tag=%q digest=%q", tc.in, r.String(), r.Name, r.Tag, r.Digest)
		}
	}
}

func TestParseRefRejects(t *testing.T) {
	for _, in := range []string{"", "Busybox", "busybox:", "a b", "busybox@sha256:short", "-x", "busybox:tag:tag"} {
		if _, err := ParseRef(in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseRef(%q) err = %v, want InvalidArgument", in, err)
		}
	}
}
