package unpack

import (
	"errors"
	"strings"
	"testing"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestCleanName(t *testing.T) {
	tests := []struct {
		in, want string // want "" means refused
	}{
		{"a", "a"},
		{"a/b/", "a/b"},
		{"./a//b/./c", "a/b/c"},
		{"/etc/passwd", "etc/passwd"},
		{"///x", "x"},
		{"", "."},
		{"/", "."},
		{"./", "."},
		{"a/..", "."},
		{"a/../b", "b"},
		{"..", ""},
		{"../x", ""},
		{"a/../../x", ""},
		{"/../x", ""},
		{"./../x", ""},
		{"a/b/../../..", ""},
		{"..foo", "..foo"},
		{"a/..b", "a/..b"},
		{"nul\x00", ""},
	}
	for _, tt := range tests {
		got, err := cleanName(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("cleanName(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestDecompressUnknownMediaType(t *testing.T) {
	for _, mt := range []string{"", "application/vnd.oci.image.config.v1+json", "application/vnd.oci.image.layer.v1.tar+bzip2"} {
		_, err := Decompress(strings.NewReader(""), mt)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Decompress(%q): %v, want ErrInvalidArgument", mt, err)
		}
	}
}
