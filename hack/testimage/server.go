package testimage

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
)

// Server is an in-memory distribution API (serve it with httptest on
// 127.0.0.1) for tests that need what a real registry refuses: blobs that do
// not match their digest, truncated or stalled downloads, dropped
// connections, token auth. It takes pushes too (the upload digest is
// verified, as a registry does); blobs are shared by all repositories.
type Server struct {
	mu        sync.Mutex
	manifests map[string]manifestEntry // "repo:ref" -> manifest
	blobs     map[digest.Digest][]byte
	uploads   map[string]*bytes.Buffer

	// Tamper, when set, may change (or stall, by blocking) a blob as it is
	// served to a GET.
	Tamper func(d digest.Digest, data []byte) []byte
	// DropAfter, when set and returning ok, makes a blob GET announce the
	// full Content-Length, send only n bytes and cut the connection.
	DropAfter func(d digest.Digest) (n int64, ok bool)
	// OnRequest, when set, sees every request first.
	OnRequest func(r *http.Request)
	// User and Password, when set, require basic auth (or, with Token set,
	// are what the token endpoint asks for).
	User, Password string
	// Token, when set, requires "Authorization: Bearer <Token>" on /v2/
	// and answers 401 with a Bearer challenge whose realm is /token on this
	// server; GET /token hands out Token (checking basic auth if User set).
	Token string

	// BlobRequests counts blob GETs, to prove work was shared.
	BlobRequests atomic.Int64
	// ManifestRequests counts manifest GETs and HEADs.
	ManifestRequests atomic.Int64
	// TokenRequests counts token grants.
	TokenRequests atomic.Int64
}

type manifestEntry struct {
	data      []byte
	mediaType string
}

// NewServer returns an empty Server.
func NewServer() *Server {
	return &Server{
		manifests: map[string]manifestEntry{},
		blobs:     map[digest.Digest][]byte{},
		uploads:   map[string]*bytes.Buffer{},
	}
}

// Add serves b in repo by digest and under tag (when not empty).
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

// AddIndex serves an index and all its images in repo, the index under tag.
func (s *Server) AddIndex(repo, tag string, idx *BuiltIndex) {
	for _, b := range idx.Images {
		s.Add(repo, "", b)
	}
	s.AddManifest(repo, tag, idx.mediaType(), idx.Data)
}

// AddManifest serves data as a manifest of mediaType in repo by its digest
// and under tag (when not empty), and returns the digest.
func (s *Server) AddManifest(repo, tag, mediaType string, data []byte) digest.Digest {
	d := digest.SHA256.FromBytes(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := manifestEntry{data: data, mediaType: mediaType}
	s.manifests[repo+":"+d.String()] = e
	if tag != "" {
		s.manifests[repo+":"+tag] = e
	}
	return d
}

// SetBlob serves data as blob d, whether or not it matches d.
func (s *Server) SetBlob(d digest.Digest, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blobs[d] = data
}

// Blob returns the stored blob d.
func (s *Server) Blob(d digest.Digest) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, ok := s.blobs[d]
	return data, ok
}

// Manifest returns the manifest stored in repo under ref.
func (s *Server) Manifest(repo, ref string) (data []byte, mediaType string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.manifests[repo+":"+ref]
	return e.data, e.mediaType, ok
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.OnRequest != nil {
		s.OnRequest(r)
	}
	if r.URL.Path == "/token" {
		s.serveToken(w, r)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/v2") {
		http.NotFound(w, r)
		return
	}
	if !s.authorized(w, r) {
		return
	}
	w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	path := strings.TrimPrefix(r.URL.Path, "/v2/")
	switch {
	case r.URL.Path == "/v2/" || r.URL.Path == "/v2":
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	case path == "_catalog":
		s.serveCatalog(w)
	case strings.HasSuffix(path, "/tags/list"):
		s.serveTags(w, strings.TrimSuffix(path, "/tags/list"))
	case strings.Contains(path, "/manifests/"):
		i := strings.LastIndex(path, "/manifests/")
		s.serveManifest(w, r, path[:i], path[i+len("/manifests/"):])
	case strings.Contains(path, "/blobs/uploads"):
		i := strings.LastIndex(path, "/blobs/uploads")
		s.serveUpload(w, r, path[:i], strings.Trim(path[i+len("/blobs/uploads"):], "/"))
	case strings.Contains(path, "/blobs/"):
		i := strings.LastIndex(path, "/blobs/")
		s.serveBlob(w, r, digest.Digest(path[i+len("/blobs/"):]))
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.Token != "" {
		if r.Header.Get("Authorization") == "Bearer "+s.Token {
			return true
		}
		scope := ""
		if p := strings.TrimPrefix(r.URL.Path, "/v2/"); p != r.URL.Path {
			for _, sep := range []string{"/manifests/", "/blobs/", "/tags/"} {
				if i := strings.Index(p, sep); i > 0 {
					scope = fmt.Sprintf(`,scope="repository:%s:pull"`, p[:i])
					break
				}
			}
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="testimage"%s`, r.Host, scope))
		apiError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return false
	}
	if s.User != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != s.User || p != s.Password {
			w.Header().Set("WWW-Authenticate", `Basic realm="testimage"`)
			apiError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return false
		}
	}
	return true
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if s.Token == "" {
		http.NotFound(w, r)
		return
	}
	if s.User != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != s.User || p != s.Password {
			w.Header().Set("WWW-Authenticate", `Basic realm="testimage-token"`)
			apiError(w, http.StatusUnauthorized, "UNAUTHORIZED", "bad credentials")
			return
		}
	}
	s.TokenRequests.Add(1)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"token": s.Token, "access_token": s.Token, "expires_in": 300,
		"issued_at": time.Now().UTC().Format(time.RFC3339),
	})
}

func (s *Server) serveCatalog(w http.ResponseWriter) {
	s.mu.Lock()
	seen := map[string]bool{}
	for k := range s.manifests {
		seen[k[:strings.Index(k, ":")]] = true
	}
	s.mu.Unlock()
	repos := []string{}
	for k := range seen {
		repos = append(repos, k)
	}
	slices.Sort(repos)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"repositories": repos})
}

func (s *Server) serveTags(w http.ResponseWriter, repo string) {
	s.mu.Lock()
	tags := []string{}
	for k := range s.manifests {
		if ref, ok := strings.CutPrefix(k, repo+":"); ok && !strings.Contains(ref, ":") {
			tags = append(tags, ref)
		}
	}
	s.mu.Unlock()
	if len(tags) == 0 {
		apiError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry")
		return
	}
	slices.Sort(tags)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"name": repo, "tags": tags})
}

func (s *Server) serveManifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.ManifestRequests.Add(1)
		data, mediaType, ok := s.Manifest(repo, ref)
		if !ok {
			apiError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown")
			return
		}
		w.Header().Set("Content-Type", mediaType)
		w.Header().Set("Docker-Content-Digest", digest.SHA256.FromBytes(data).String())
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		if r.Method == http.MethodGet {
			w.Write(data)
		}
	case http.MethodPut:
		data, err := io.ReadAll(r.Body)
		if err != nil {
			apiError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
			return
		}
		d := digest.SHA256.FromBytes(data)
		if strings.Contains(ref, ":") && ref != d.String() {
			apiError(w, http.StatusBadRequest, "DIGEST_INVALID", "manifest does not match "+ref)
			return
		}
		tag := ref
		if strings.Contains(ref, ":") {
			tag = ""
		}
		s.AddManifest(repo, tag, r.Header.Get("Content-Type"), data)
		w.Header().Set("Docker-Content-Digest", d.String())
		w.Header().Set("Location", "/v2/"+repo+"/manifests/"+d.String())
		w.WriteHeader(http.StatusCreated)
	default:
		apiError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", r.Method)
	}
}

func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request, d digest.Digest) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		apiError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", r.Method)
		return
	}
	data, ok := s.Blob(d)
	if !ok {
		apiError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to registry")
		return
	}
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Type", "application/octet-stream")
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		return
	}
	s.BlobRequests.Add(1)
	if s.Tamper != nil {
		data = s.Tamper(d, data)
	}
	if s.DropAfter != nil {
		if n, ok := s.DropAfter(d); ok {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data[:min(max(n, 0), int64(len(data)))])
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			panic(http.ErrAbortHandler) // cuts the connection mid-body
		}
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request, repo, id string) {
	switch {
	case r.Method == http.MethodPost && id == "":
		if m := digest.Digest(r.URL.Query().Get("mount")); m != "" {
			if _, ok := s.Blob(m); ok {
				w.Header().Set("Location", "/v2/"+repo+"/blobs/"+m.String())
				w.Header().Set("Docker-Content-Digest", m.String())
				w.WriteHeader(http.StatusCreated)
				return
			}
		}
		var b [16]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
		s.mu.Lock()
		s.uploads[id] = &bytes.Buffer{}
		s.mu.Unlock()
		if d := digest.Digest(r.URL.Query().Get("digest")); d != "" { // monolithic POST
			s.finishUpload(w, r, repo, id, d)
			return
		}
		w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
		w.Header().Set("Range", "0-0")
		w.Header().Set("Docker-Upload-UUID", id)
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPatch && id != "":
		s.mu.Lock()
		buf, ok := s.uploads[id]
		s.mu.Unlock()
		if !ok {
			apiError(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "upload unknown")
			return
		}
		data, err := io.ReadAll(r.Body)
		if err != nil {
			apiError(w, http.StatusBadRequest, "BLOB_UPLOAD_INVALID", err.Error())
			return
		}
		s.mu.Lock()
		buf.Write(data)
		n := buf.Len()
		s.mu.Unlock()
		w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
		w.Header().Set("Range", fmt.Sprintf("0-%d", max(n-1, 0)))
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPut && id != "":
		s.finishUpload(w, r, repo, id, digest.Digest(r.URL.Query().Get("digest")))
	default:
		apiError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", r.Method)
	}
}

func (s *Server) finishUpload(w http.ResponseWriter, r *http.Request, repo, id string, d digest.Digest) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		apiError(w, http.StatusBadRequest, "BLOB_UPLOAD_INVALID", err.Error())
		return
	}
	s.mu.Lock()
	buf, ok := s.uploads[id]
	delete(s.uploads, id)
	s.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "upload unknown")
		return
	}
	buf.Write(data)
	if err := d.Validate(); err != nil {
		apiError(w, http.StatusBadRequest, "DIGEST_INVALID", "bad digest: "+err.Error())
		return
	}
	if got := d.Algorithm().FromBytes(buf.Bytes()); got != d {
		apiError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("content is %s, not %s", got, d))
		return
	}
	s.SetBlob(d, buf.Bytes())
	w.Header().Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.WriteHeader(http.StatusCreated)
}
