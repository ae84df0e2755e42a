package oci

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
web:x:1001:1002::/srv:/bin/false
broken line
bad:x:notanumber:1::/:/bin/sh
`

const testGroup = `root:x:0:
wheel:x:10:root,app
app:x:1000:app
staff:x:50:app,web
www:x:1002:
video:x:44: web , other
`

func fakeRootfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
	return dir
}

func i64(v int64) *runtime.Int64Value { return &runtime.Int64Value{Value: v} }

func TestUser(t *testing.T) {
	rootfs := fakeRootfs(t)
	cases := []struct {
		name      string
		rootfs    string // "-" = none
		imageUser string
		username  string
		uid, gid  *runtime.Int64Value
		supp      []int64
		policy    runtime.SupplementalGroupsPolicy
		wantUID   uint32
		wantGID   uint32
		wantGids  []uint32
		err       error
	}{
		{name: "default root with its groups", wantUID: 0, wantGID: 0, wantGids: []uint32{0, 10}},
		{name: "run_as_user found: passwd gid and memberships", uid: i64(1000), wantUID: 1000, wantGID: 1000, wantGids: []uint32{10, 50, 1000}},
		{name: "run_as_user not in passwd: gid 0", uid: i64(4242), wantUID: 4242, wantGID: 0, wantGids: []uint32{0}},
		{name: "run_as_user + run_as_group", uid: i64(1000), gid: i64(3000), wantUID: 1000, wantGID: 3000, wantGids: []uint32{10, 50, 3000}},
		{name: "run_as_username", username: "web", wantUID: 1001, wantGID: 1002, wantGids: []uint32{44, 50, 1002}},
		{name: "run_as_username + run_as_group", username: "web", gid: i64(7), wantUID: 1001, wantGID: 7, wantGids: []uint32{7, 44, 50}},
		{name: "unknown user name", username: "nobody", err: errInvalid},
		{name: "username and uid both", username: "web", uid: i64(1), err: errInvalid},
		{name: "group without user", gid: i64(5), err: errInvalid},
		{name: "negative uid", uid: i64(-1), err: errInvalid},
		{name: "uid too large", uid: i64(1 << 32), err: errInvalid},
		{name: "CRI supplemental groups merged", uid: i64(1000), supp: []int64{5000, 10}, wantUID: 1000, wantGID: 1000, wantGids: []uint32{10, 50, 1000, 5000}},
		{name: "Strict: no /etc/group memberships", uid: i64(1000), supp: []int64{5000}, policy: runtime.SupplementalGroupsPolicy_Strict,
			wantUID: 1000, wantGID: 1000, wantGids: []uint32{1000, 5000}},
		{name: "negative supplemental group", uid: i64(1000), supp: []int64{-3}, err: errInvalid},
		{name: "unknown policy", uid: i64(1000), policy: 7, err: errInvalid},
		{name: "image USER name", imageUser: "app", wantUID: 1000, wantGID: 1000, wantGids: []uint32{10, 50, 1000}},
		{name: "image USER uid", imageUser: "1001", wantUID: 1001, wantGID: 1002, wantGids: []uint32{44, 50, 1002}},
		{name: "image USER uid:gid", imageUser: "1001:99", wantUID: 1001, wantGID: 99, wantGids: []uint32{44, 50, 99}},
		{name: "image USER name:group", imageUser: "app:staff", wantUID: 1000, wantGID: 50, wantGids: []uint32{10, 50}},
		{name: "image USER uid:group unknown uid", imageUser: "777:www", wantUID: 777, wantGID: 1002, wantGids: []uint32{1002}},
		{name: "image USER name:gid", imageUser: "web:5", wantUID: 1001, wantGID: 5, wantGids: []uint32{5, 44, 50}},
		{name: "image USER unknown name", imageUser: "ghost", err: errInvalid},
		{name: "image USER unknown group", imageUser: "app:ghosts", err: errInvalid},
		{name: "image USER malformed", imageUser: "a:b:c", err: errInvalid},
		{name: "image USER empty group", imageUser: "app:", err: errInvalid},
		{name: "CRI user over image USER", imageUser: "app:staff", uid: i64(1001), wantUID: 1001, wantGID: 1002, wantGids: []uint32{44, 50, 1002}},
		{name: "no rootfs: numeric uid works", rootfs: "-", uid: i64(1000), wantUID: 1000, wantGID: 0, wantGids: []uint32{0}},
		{name: "no rootfs: names fail", rootfs: "-", username: "app", err: errInvalid},
		{name: "no rootfs: uid:gid works", rootfs: "-", imageUser: "5:6", wantUID: 5, wantGID: 6, wantGids: []uint32{6}},
		{name: "rootfs path missing", rootfs: "/nonexistent/rootfs", uid: i64(1000), err: errdefs.ErrFailedPrecondition},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			r.Image.Rootfs = rootfs
			switch tc.rootfs {
			case "":
			case "-":
				r.Image.Rootfs = ""
			default:
				r.Image.Rootfs = tc.rootfs
			}
			r.Image.Config.User = tc.imageUser
			s := sc(r)
			s.RunAsUsername, s.RunAsUser, s.RunAsGroup = tc.username, tc.uid, tc.gid
			s.SupplementalGroups, s.SupplementalGroupsPolicy = tc.supp, tc.policy
			res, err := Generate(testHost(), r)
			wantErr(t, err, tc.err)
			if err != nil {
				return
			}
			u := res.Spec.Process.User
			if u.UID != tc.wantUID || u.GID != tc.wantGID || !slices.Equal(u.AdditionalGids, tc.wantGids) {
				t.Fatalf("user = %d:%d %v, want %d:%d %v", u.UID, u.GID, u.AdditionalGids, tc.wantUID, tc.wantGID, tc.wantGids)
			}
		})
	}
}

// TestUserMaliciousRootfs: the image's /etc/passwd and /etc/group are
// resolved inside the rootfs, whatever symlinks the image holds; crid never
// reads a host file through them, never blocks on a FIFO and refuses huge
// files.
func TestUserMaliciousRootfs(t *testing.T) {
	// A host-side "secret" passwd outside every rootfs: if crid read it,
	// user "hostonly" would resolve.
	outside := t.TempDir()
	secret := filepath.Join(outside, "shadow")
	writeFiles(t, outside, map[string]string{"shadow": "hostonly:x:4321:4321::/:/bin/sh\n"})

	cases := []struct {
		name  string
		setup func(t *testing.T, root string)
		// user to look up and the expected outcome
		username string
		wantUID  uint32
		wantErr  bool
	}{
		{"absolute symlink to a host file", func(t *testing.T, root string) {
			mkdir(t, root, "etc")
			symlink(t, secret, filepath.Join(root, "etc/passwd"))
		}, "hostonly", 0, true},
		{"relative symlink climbing out", func(t *testing.T, root string) {
			mkdir(t, root, "etc")
			rel, _ := filepath.Rel(filepath.Join(root, "etc"), secret)
			symlink(t, rel, filepath.Join(root, "etc/passwd"))
		}, "hostonly", 0, true},
		{"symlink to ../../etc/shadow lands inside the rootfs", func(t *testing.T, root string) {
			writeFiles(t, root, map[string]string{"etc/shadow": "inside:x:11:11::/:/bin/sh\n"})
			symlink(t, "../../../../../../etc/shadow", filepath.Join(root, "etc/passwd"))
		}, "inside", 11, false},
		{"/etc itself a symlink to a host dir", func(t *testing.T, root string) {
			writeFiles(t, outside, map[string]string{"etcdir/passwd": "hostonly:x:4321:4321::/:/bin/sh\n"})
			symlink(t, filepath.Join(outside, "etcdir"), filepath.Join(root, "etc"))
		}, "hostonly", 0, true},
		{"/etc/passwd is a FIFO", func(t *testing.T, root string) {
			mkdir(t, root, "etc")
			if err := syscall.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "app", 0, true},
		{"/etc/passwd is a directory", func(t *testing.T, root string) {
			mkdir(t, root, "etc/passwd")
		}, "app", 0, true},
		{"/etc/passwd too large", func(t *testing.T, root string) {
			writeFiles(t, root, map[string]string{"etc/passwd": "app:x:1000:1000::/:/bin/sh\n" + strings.Repeat("#", maxUserFileSize)})
		}, "app", 0, true},
		{"symlink loop", func(t *testing.T, root string) {
			mkdir(t, root, "etc")
			symlink(t, "passwd", filepath.Join(root, "etc/passwd"))
		}, "app", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.setup(t, root)
			r := testRequest()
			r.Image.Rootfs = root
			sc(r).RunAsUsername = tc.username
			res, err := Generate(testHost(), r)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("resolved %q to uid %d: read outside the rootfs or through a bad file", tc.username, res.Spec.Process.User.UID)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Spec.Process.User.UID != tc.wantUID {
				t.Fatalf("uid = %d, want %d", res.Spec.Process.User.UID, tc.wantUID)
			}
		})
	}
}

func mkdir(t *testing.T, root, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestParsePasswdGroup(t *testing.T) {
	users := parsePasswd([]byte(testPasswd))
	var names []string
	for _, u := range users {
		names = append(names, u.name)
	}
	if want := []string{"root", "daemon", "app", "web"}; !slices.Equal(names, want) {
		t.Fatalf("users = %v, want %v (malformed lines skipped)", names, want)
	}
	groups := parseGroup([]byte(testGroup))
	if len(groups) != 6 || !slices.Equal(groups[5].members, []string{"web", "other"}) {
		t.Fatalf("groups = %+v", groups)
	}
}
