package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/crid-dev/crid/hack/testimage"
	"github.com/crid-dev/crid/pkg/errdefs"
)

// chunked serves body without a Content-Length, so only the verifying
// reader can notice a wrong size.
func chunked(body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		half := len(body) / 2
		w.Write(body[:half])
		w.(http.Flusher).Flush()
		w.Write(body[half:])
	})
}

func TestFetchBlob(t *testing.T) {
	img := smallImage(t, "blob", ocispec.Platform{}, false)
	layer := img.Layers[0]
	blob := img.Blobs[layer.Digest]
	corrupt := append([]byte(nil), blob...)
	corrupt[len(corrupt)/2] ^= 0xff
	short, long := blob[:len(blob)-1], append(append([]byte(nil), blob...), "extra"...)

	for _, tc := range []struct {
		name    string
		handler http.Handler
		tamper  func([]byte) []byte
		drop    bool // cut the connection halfway
		desc    ocispec.Descriptor
		openErr error  // from FetchBlob
		readErr error  // from reading the blob to its end
		substr  string // in the error
	}{
		{name: "correct", desc: layer},
		{name: "same size, corrupted", tamper: func([]byte) []byte { return corrupt }, desc: layer,
			readErr: errdefs.ErrInvalidArgument, substr: "digest mismatch"},
		{name: "shorter, with Content-Length", tamper: func([]byte) []byte { return short }, desc: layer,
			openErr: errdefs.ErrInvalidArgument, substr: "manifest says"},
		{name: "larger, with Content-Length", tamper: func([]byte) []byte { return long }, desc: layer,
			openErr: errdefs.ErrInvalidArgument, substr: "manifest says"},
		{name: "chunked, correct", handler: chunked(blob), desc: layer},
		{name: "chunked, corrupted", handler: chunked(corrupt), desc: layer,
			readErr: errdefs.ErrInvalidArgument, substr: "digest mismatch"},
		{name: "chunked, shorter", handler: chunked(short), desc: layer,
			readErr: errdefs.ErrInvalidArgument, substr: "truncated"},
		{name: "chunked, larger", handler: chunked(long), desc: layer,
			readErr: errdefs.ErrInvalidArgument, substr: "larger"},
		{name: "connection cut halfway", drop: true, desc: layer,
			readErr: errdefs.ErrUnavailable, substr: "read blob"},
		{name: "unknown blob", desc: ocispec.Descriptor{Digest: digest.FromString("absent"), Size: 6},
			openErr: errdefs.ErrNotFound},
		{name: "invalid digest", desc: ocispec.Descriptor{Digest: "sha256:xyz", Size: 1},
			openErr: errdefs.ErrInvalidArgument},
		{name: "negative size", desc: ocispec.Descriptor{Digest: layer.Digest, Size: -1},
			openErr: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.handler
			if h == nil {
				srv := testimage.NewServer()
				srv.Add("library/app", "v1", img)
				if tc.tamper != nil {
					srv.Tamper = func(d digest.Digest, data []byte) []byte {
						if d == layer.Digest {
							return tc.tamper(data)
						}
						return data
					}
				}
				if tc.drop {
					srv.DropAfter = func(d digest.Digest) (int64, bool) { return int64(len(blob) / 2), d == layer.Digest }
				}
				h = srv
			}
			counter := &countingHandler{next: h}
			host := serve(t, counter)
			rc, err := newTestClient("").FetchBlob(context.Background(), mustRef(t, host+"/library/app:v1"), nil, tc.desc)
			if tc.openErr != nil {
				if !errors.Is(err, tc.openErr) || !strings.Contains(err.Error(), tc.substr) {
					t.Fatalf("FetchBlob error %v, want %v containing %q", err, tc.openErr, tc.substr)
				}
				if _, blobs := counter.counts(); blobs > 1 {
					t.Errorf("%d blob requests for a permanent error", blobs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			data, err := io.ReadAll(rc)
			if tc.readErr == nil {
				if err != nil || !bytes.Equal(data, blob) {
					t.Fatalf("read %d bytes, %v", len(data), err)
				}
				return
			}
			if !errors.Is(err, tc.readErr) || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("read error %v, want %v containing %q", err, tc.readErr, tc.substr)
			}
			// The error sticks: later reads do not turn it into io.EOF.
			if _, again := rc.Read(make([]byte, 8)); again == nil || errors.Is(again, io.EOF) {
				t.Errorf("read after failure: %v", again)
			}
		})
	}
}

// The error comes with the last bytes, never as a clean io.EOF first.
func TestVerifyingReaderSmallReads(t *testing.T) {
	data := []byte("some blob content")
	good := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	for _, tc := range []struct {
		name string
		body []byte
		desc ocispec.Descriptor
		ok   bool
	}{
		{"match", data, good, true},
		{"corrupted", []byte("some blob CONTENT"), good, false},
		{"short", data[:5], good, false},
		{"long", append(append([]byte(nil), data...), '!'), good, false},
		{"empty blob", nil, ocispec.Descriptor{Digest: digest.FromBytes(nil), Size: 0}, true},
	} {
		v := &verifyingReader{body: io.NopCloser(bytes.NewReader(tc.body)), desc: tc.desc, h: tc.desc.Digest.Algorithm().Hash()}
		var got []byte
		var err error
		buf := make([]byte, 3)
		for {
			var n int
			n, err = v.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		if tc.ok != (err == io.EOF) {
			t.Errorf("%s: final error %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v is not invalid argument", tc.name, err)
		}
		if tc.ok && !bytes.Equal(got, tc.body) {
			t.Errorf("%s: read %q", tc.name, got)
		}
	}
}
