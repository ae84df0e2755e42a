package testimage

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Server is an in-memory, read-only distribution API for tests that need
// what a real registry refuses to store: corrupt or truncated blobs.
type Server struct {
	mu        sync.Mutex
	manifests map[string]manifestEntry // "repo:ref" -> manifest
	blobs     map[digest.Digest][]byte
	// Tamper, when set, may change a blob as it is served.
	Tamper func(d digest.Digest, data []byte) []byte
	// User and Password, when set, require basic auth.
	User, Password string
	// BlobRequests counts blob GETs, to prove work was shared.
	BlobRequests atomic.Int64
}

type manifestEntry struct {
	data      []byte
	mediaType string
}

// NewServer returns an empty Server.
func NewServer() *Server {
	return &Server{manifests: map[string]manifestEntry{}, blobs: map[digest.Digest][]byte{}}
}

// Add serves b in repo under tag (and under its digest).
func (s *Server) Add(repo, tag string, b *Built) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for d, data := range b.Blobs {
		s.blobs[d] = data
	}
	e := manifestEntry{data: b.Manifest, mediaType: b.MediaType}
	s.manifests[repo+":"+b.ManifestDigest.String()] = e
	if tag != "" {
		s.manifests[repo+":"+tag] = e
	}
}

// AddIndex serves an index and all its images in repo under tag.
func (s *Server) AddIndex(repo, tag string, idx *BuiltIndex) {
	for _, b := range idx.Images {
		s.Add(repo, "", b)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := manifestEntry{data: idx.Data, mediaType: ocispec.MediaTypeImageIndex}
	s.manifests[repo+":"+idx.Digest.String()] = e
	s.manifests[repo+":"+tag] = e
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.User != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != s.User || p != s.Password {
			w.Header().Set("WWW-Authenticate", `Basic realm="testimage"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
	}
	path := strings.TrimPrefix(r.URL.Path, "/v2/")
	if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
		w.WriteHeader(http.StatusOK)
		return
	}
	if i := strings.LastIndex(path, "/manifests/"); i > 0 {
		s.mu.Lock()
		e, ok := s.manifests[path[:i]+":"+path[i+len("/manifests/"):]]
		s.mu.Unlock()
		if !ok {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", e.mediaType)
		w.Header().Set("Docker-Content-Digest", digest.SHA256.FromBytes(e.data).String())
		w.Write(e.data)
		return
	}
	if i := strings.LastIndex(path, "/blobs/"); i > 0 {
		s.BlobRequests.Add(1)
		d := digest.Digest(path[i+len("/blobs/"):])
		s.mu.Lock()
		data, ok := s.blobs[d]
		tamper := s.Tamper
		s.mu.Unlock()
		if !ok {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		if tamper != nil {
			data = tamper(d, data)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
		return
	}
	http.NotFound(w, r)
}
