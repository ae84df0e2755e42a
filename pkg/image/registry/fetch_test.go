package registry

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/crid-dev/crid/hack/testimage"
	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestPull(t *testing.T) {
	amd := smallImage(t, "amd64", ocispec.Platform{OS: "linux", Architecture: "amd64"}, false)
	arm := smallImage(t, "arm64", ocispec.Platform{OS: "linux", Architecture: "arm64"}, false)
	win := smallImage(t, "windows", ocispec.Platform{OS: "windows", Architecture: "amd64"}, false)
	dAmd := smallImage(t, "docker-amd64", ocispec.Platform{OS: "linux", Architecture: "amd64"}, true)
	dArm := smallImage(t, "docker-arm64", ocispec.Platform{OS: "linux", Architecture: "arm64"}, true)
	badCfg := smallImage(t, "bad-config", ocispec.Platform{}, false)

	reg := newFakeReg()
	for _, b := range []*testimage.Built{amd, arm, win, dAmd, dArm} {
		reg.addImage("library/app", "", b)
	}
	reg.addImage("library/app", "plain", amd)
	reg.addImage("library/app", "latest", amd)
	reg.addImage("library/app", "docker", dAmd)
	ociIdx := reg.addIndex("library/app", "multi", ocispec.MediaTypeImageIndex, indexOf(t, ocispec.MediaTypeImageIndex, arm, amd))
	dockerList := reg.addIndex("library/app", "dockerlist", MediaTypeDockerManifestList, indexOf(t, MediaTypeDockerManifestList, dArm, dAmd))
	reg.addIndex("library/app", "noamd64", ocispec.MediaTypeImageIndex, indexOf(t, ocispec.MediaTypeImageIndex, arm, win))
	// An index without mediaType, served as plain JSON, is still an index.
	bare, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []ocispec.Descriptor{
		{MediaType: amd.MediaType, Digest: amd.ManifestDigest, Size: int64(len(amd.Manifest)), Platform: &amd.Platform}}})
	bareIdx := reg.addIndex("library/app", "bare", "application/json", bare)
	// Content served under a digest that is not its own.
	wrong := digest.FromString("not the manifest")
	reg.addRaw("library/app", wrong.String(), amd.MediaType, amd.Manifest)
	// An index whose amd64 entry resolves to different content.
	liar := smallImage(t, "liar", ocispec.Platform{}, false)
	reg.addIndex("library/app", "lying-index", ocispec.MediaTypeImageIndex, indexOf(t, ocispec.MediaTypeImageIndex, liar))
	reg.addRaw("library/app", liar.ManifestDigest.String(), amd.MediaType, amd.Manifest)
	// A config blob that does not match its digest.
	reg.addImage("library/app", "badconfig", badCfg)
	reg.blobs[badCfg.ConfigDigest] = []byte(strings.Repeat("x", len(badCfg.Config)))
	// Manifests crid refuses.
	reg.addRaw("library/app", "schema1", mediaTypeDockerSchema1, []byte(`{"schemaVersion":1,"name":"library/app","tag":"schema1"}`))
	reg.addRaw("library/app", "notjson", ocispec.MediaTypeImageManifest, []byte("<html>"))
	reg.addRaw("library/app", "noconfig", ocispec.MediaTypeImageManifest, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`))
	huge, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("c"), Size: MaxConfigSize + 1}})
	reg.addRaw("library/app", "hugeconfig", ocispec.MediaTypeImageManifest, huge)
	// Nested indexes: three levels are followed, four are refused.
	level := indexOf(t, ocispec.MediaTypeImageIndex, amd)
	var nested []digest.Digest
	for i := 0; i < 4; i++ {
		d := reg.addIndex("library/app", "", ocispec.MediaTypeImageIndex, level)
		nested = append(nested, d)
		p := ocispec.Platform{OS: "linux", Architecture: "amd64"}
		level, _ = json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
			Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageIndex, Digest: d, Size: int64(len(level)), Platform: &p}}})
	}
	host := reg.start(t)
	c := newTestClient("")

	for _, tc := range []struct {
		name      string
		ref       string // after host/library/app
		want      *testimage.Built
		top       digest.Digest
		indexes   []digest.Digest
		err       error
		errSubstr string
	}{
		{name: "by tag", ref: ":plain", want: amd, top: amd.ManifestDigest},
		{name: "no tag is latest", ref: "", want: amd, top: amd.ManifestDigest},
		{name: "by digest", ref: "@" + arm.ManifestDigest.String(), want: arm, top: arm.ManifestDigest},
		{name: "tag and digest uses the digest", ref: ":plain@" + arm.ManifestDigest.String(), want: arm, top: arm.ManifestDigest},
		{name: "OCI index picks linux/amd64", ref: ":multi", want: amd, top: ociIdx, indexes: []digest.Digest{ociIdx}},
		{name: "OCI index by digest", ref: "@" + ociIdx.String(), want: amd, top: ociIdx, indexes: []digest.Digest{ociIdx}},
		{name: "index without mediaType", ref: ":bare", want: amd, top: bareIdx, indexes: []digest.Digest{bareIdx}},
		{name: "Docker schema2", ref: ":docker", want: dAmd, top: dAmd.ManifestDigest},
		{name: "Docker manifest list", ref: ":dockerlist", want: dAmd, top: dockerList, indexes: []digest.Digest{dockerList}},
		{name: "three nested indexes", ref: "@" + nested[2].String(), want: amd, top: nested[2], indexes: []digest.Digest{nested[2], nested[1], nested[0]}},
		{name: "four nested indexes", ref: "@" + nested[3].String(), err: errdefs.ErrInvalidArgument, errSubstr: "too deep"},
		{name: "index without the platform", ref: ":noamd64", err: errdefs.ErrNotFound, errSubstr: "linux/amd64"},
		{name: "unknown tag", ref: ":nope", err: errdefs.ErrNotFound},
		{name: "served manifest does not match the digest", ref: "@" + wrong.String(), err: errdefs.ErrInvalidArgument, errSubstr: amd.ManifestDigest.String()},
		{name: "index entry does not match", ref: ":lying-index", err: errdefs.ErrInvalidArgument, errSubstr: "content has digest"},
		{name: "config does not match", ref: ":badconfig", err: errdefs.ErrInvalidArgument, errSubstr: "digest mismatch"},
		{name: "schema 1", ref: ":schema1", err: errdefs.ErrInvalidArgument, errSubstr: "schema 1"},
		{name: "not JSON", ref: ":notjson", err: errdefs.ErrInvalidArgument},
		{name: "no config digest", ref: ":noconfig", err: errdefs.ErrInvalidArgument},
		{name: "config over the size limit", ref: ":hugeconfig", err: errdefs.ErrInvalidArgument, errSubstr: "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.Pull(context.Background(), mustRef(t, host+"/library/app"+tc.ref), nil)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.errSubstr) {
					t.Fatalf("error %v, want %v containing %q", err, tc.err, tc.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.TopDigest != tc.top || res.ManifestDigest != tc.want.ManifestDigest {
				t.Errorf("top %s manifest %s, want %s %s", res.TopDigest, res.ManifestDigest, tc.top, tc.want.ManifestDigest)
			}
			if !reflect.DeepEqual(res.IndexDigests, tc.indexes) || len(res.IndexData) != len(tc.indexes) {
				t.Errorf("indexes %v (%d data), want %v", res.IndexDigests, len(res.IndexData), tc.indexes)
			}
			for _, d := range res.IndexDigests {
				if digest.SHA256.FromBytes(res.IndexData[d]) != d {
					t.Errorf("index data of %s does not match", d)
				}
			}
			if string(res.ManifestData) != string(tc.want.Manifest) || string(res.ConfigData) != string(tc.want.Config) {
				t.Errorf("manifest or config data differ from what was served")
			}
			if res.Manifest.Config.Digest != tc.want.ConfigDigest || len(res.Manifest.Layers) != 1 {
				t.Errorf("parsed manifest %+v", res.Manifest)
			}
			if got, want := configLabel(t, res.ConfigData), configLabel(t, tc.want.Config); got != want {
				t.Errorf("config label %q, want %q", got, want)
			}
		})
	}
}

func TestManifestSizeLimit(t *testing.T) {
	img := smallImage(t, "limit", ocispec.Platform{}, false)
	// A valid manifest padded to exactly MaxManifestSize bytes.
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config:      ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: img.ConfigDigest, Size: int64(len(img.Config))},
		Annotations: map[string]string{"pad": ""}}
	base, _ := json.Marshal(m)
	m.Annotations["pad"] = strings.Repeat("p", MaxManifestSize-len(base))
	exact, _ := json.Marshal(m)
	if len(exact) != MaxManifestSize {
		t.Fatalf("padded manifest is %d bytes", len(exact))
	}
	m.Annotations["pad"] += "p"
	over, _ := json.Marshal(m)

	reg := newFakeReg()
	reg.addImage("library/app", "", img)
	reg.addRaw("library/app", "exact", ocispec.MediaTypeImageManifest, exact)
	reg.addRaw("library/app", "over", ocispec.MediaTypeImageManifest, over)
	reg.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/manifests/over-chunked") {
			return false
		}
		// No Content-Length: the limit must hold while reading.
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		w.Write(over[:1024])
		w.(http.Flusher).Flush()
		w.Write(over[1024:])
		return true
	}
	host := reg.start(t)
	c := newTestClient("")
	for _, tc := range []struct {
		tag  string
		fail bool
	}{{"exact", false}, {"over", true}, {"over-chunked", true}} {
		res, err := c.Pull(context.Background(), mustRef(t, host+"/library/app:"+tc.tag), nil)
		switch {
		case tc.fail && (!errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "limit")):
			t.Errorf("%s: error %v, want invalid argument over the limit", tc.tag, err)
		case !tc.fail && err != nil:
			t.Errorf("%s: %v", tc.tag, err)
		case !tc.fail && len(res.ManifestData) != MaxManifestSize:
			t.Errorf("%s: %d manifest bytes", tc.tag, len(res.ManifestData))
		}
	}
}

func TestPlatformMatch(t *testing.T) {
	d := func(os, arch, variant string) ocispec.Descriptor {
		return ocispec.Descriptor{Digest: digest.FromString(os + arch + variant),
			Platform: &ocispec.Platform{OS: os, Architecture: arch, Variant: variant}}
	}
	noPlatform := ocispec.Descriptor{Digest: digest.FromString("none")}
	for _, tc := range []struct {
		name      string
		p         Platform
		manifests []ocispec.Descriptor
		want      ocispec.Descriptor
		notFound  bool
	}{
		{"amd64 among others", amd64, []ocispec.Descriptor{d("linux", "arm64", ""), d("linux", "amd64", "")}, d("linux", "amd64", ""), false},
		{"entries without platform skipped", amd64, []ocispec.Descriptor{noPlatform, d("unknown", "unknown", ""), d("linux", "amd64", "")}, d("linux", "amd64", ""), false},
		{"exact variant", Platform{"linux", "arm", "v7"}, []ocispec.Descriptor{d("linux", "arm", "v6"), d("linux", "arm", "v7")}, d("linux", "arm", "v7"), false},
		{"no variant wanted takes the first variant", Platform{"linux", "arm64", ""}, []ocispec.Descriptor{d("linux", "arm64", "v8"), d("linux", "arm64", "v9")}, d("linux", "arm64", "v8"), false},
		{"exact empty variant beats a variant", amd64, []ocispec.Descriptor{d("linux", "amd64", "v3"), d("linux", "amd64", "")}, d("linux", "amd64", ""), false},
		{"other OS", amd64, []ocispec.Descriptor{d("windows", "amd64", "")}, ocispec.Descriptor{}, true},
		{"wanted variant missing", Platform{"linux", "arm", "v7"}, []ocispec.Descriptor{d("linux", "arm", "v6")}, ocispec.Descriptor{}, true},
		{"empty index", amd64, nil, ocispec.Descriptor{}, true},
	} {
		got, err := tc.p.match(tc.manifests)
		if tc.notFound {
			if !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("%s: got %v, %v; want not found", tc.name, got.Digest, err)
			}
			continue
		}
		if err != nil || got.Digest != tc.want.Digest {
			t.Errorf("%s: got %v, %v; want %v", tc.name, got.Digest, err, tc.want.Digest)
		}
	}
}

func TestParsePlatform(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Platform
		ok   bool
	}{
		{"linux/amd64", Platform{"linux", "amd64", ""}, true},
		{"linux/arm/v7", Platform{"linux", "arm", "v7"}, true},
		{"linux", Platform{}, false},
		{"linux/", Platform{}, false},
		{"/amd64", Platform{}, false},
		{"linux/arm/v7/x", Platform{}, false},
		{"", Platform{}, false},
	} {
		got, err := ParsePlatform(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ParsePlatform(%q) = %+v, %v", tc.in, got, err)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParsePlatform(%q): %v is not invalid argument", tc.in, err)
		}
	}
}
