package oci

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// maxUserFileSize caps how much of an image's /etc/passwd or /etc/group is
// read; the image is untrusted.
const maxUserFileSize = 4 << 20

type passwdEntry struct {
	name     string
	uid, gid uint32
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// userDB is an image's /etc/passwd and /etc/group, read on first use.
type userDB struct {
	rootfs                string
	users                 []passwdEntry
	groups                []groupEntry
	haveUsers, haveGroups bool
}

func (db *userDB) passwd() ([]passwdEntry, error) {
	if !db.haveUsers {
		data, err := db.read("/etc/passwd")
		if err != nil {
			return nil, err
		}
		db.users, db.haveUsers = parsePasswd(data), true
	}
	return db.users, nil
}

func (db *userDB) group() ([]groupEntry, error) {
	if !db.haveGroups {
		data, err := db.read("/etc/group")
		if err != nil {
			return nil, err
		}
		db.groups, db.haveGroups = parseGroup(data), true
	}
	return db.groups, nil
}

// read returns the file inside the image, or nothing if it does not exist.
func (db *userDB) read(name string) ([]byte, error) {
	if db.rootfs == "" {
		return nil, nil
	}
	if st, err := os.Stat(db.rootfs); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("image rootfs %s is not a directory (%v): %w", db.rootfs, err, errdefs.ErrFailedPrecondition)
	}
	data, err := readFileInRoot(db.rootfs, name, maxUserFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the image's %s: %w", name, err)
	}
	return data, nil
}

func (db *userDB) userByName(name string) (passwdEntry, bool, error) {
	users, err := db.passwd()
	u, ok := first(users, func(u passwdEntry) bool { return u.name == name })
	return u, ok, err
}

func (db *userDB) userByID(uid uint32) (passwdEntry, bool, error) {
	users, err := db.passwd()
	u, ok := first(users, func(u passwdEntry) bool { return u.uid == uid })
	return u, ok, err
}

func (db *userDB) groupByName(name string) (groupEntry, bool, error) {
	groups, err := db.group()
	g, ok := first(groups, func(g groupEntry) bool { return g.name == name })
	return g, ok, err
}

// first returns the first item that matches.
func first[T any](items []T, match func(T) bool) (T, bool) {
	for _, it := range items {
		if match(it) {
			return it, true
		}
	}
	var zero T
	return zero, false
}

// parsePasswd reads name:password:uid:gid:gecos:home:shell lines; malformed
// lines are skipped.
func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	for _, f := range colonRecords(data, 4) {
		uid, err1 := parseID(f[2])
		gid, err2 := parseID(f[3])
		if err1 == nil && err2 == nil {
			out = append(out, passwdEntry{name: f[0], uid: uid, gid: gid})
		}
	}
	return out
}

// parseGroup reads name:password:gid:member,member lines; malformed lines
// are skipped.
func parseGroup(data []byte) []groupEntry {
	var out []groupEntry
	for _, f := range colonRecords(data, 3) {
		gid, err := parseID(f[2])
		if err != nil {
			continue
		}
		g := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					g.members = append(g.members, m)
				}
			}
		}
		out = append(out, g)
	}
	return out
}

// colonRecords splits /etc/passwd-style data into fields, skipping blank
// lines, comments and records with fewer than minFields or no name.
func colonRecords(data []byte, minFields int) [][]string {
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxUserFileSize)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if f := strings.Split(line, ":"); len(f) >= minFields && f[0] != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

func checkID(what string, v int64) (uint32, error) {
	if v < 0 || v > math.MaxUint32-1 {
		return 0, invalid("%s %d is out of range", what, v)
	}
	return uint32(v), nil
}

// user resolves the process's uid, gid and supplemental groups.
//
// Who: run_as_username, else run_as_user, else the image's USER (name, uid,
// name:group, uid:gid, ...), else root. A user name must exist in the
// image's /etc/passwd; a numeric uid need not (its gid is then 0). The
// primary gid is run_as_group, else the group part of the image's USER when
// the image's USER is used, else the passwd entry's gid.
//
// Supplemental groups: the primary gid, CRI supplemental_groups and, unless
// supplemental_groups_policy is Strict, the groups of /etc/group that list
// the user by name (containerd's rules, including that the primary gid is
// always in the list).
func (g *gen) user() error {
	sc := g.sc
	db := &userDB{rootfs: g.req.Image.Rootfs}
	var (
		userPart, groupPart string
		haveGroup           bool
		gid                 uint32
	)
	switch {
	case sc.GetRunAsUsername() != "" && sc.GetRunAsUser() != nil:
		return invalid("run_as_user and run_as_username are both set; only one may be")
	case sc.GetRunAsUsername() != "":
		userPart = sc.GetRunAsUsername()
	case sc.GetRunAsUser() != nil:
		uid, err := checkID("run_as_user", sc.GetRunAsUser().GetValue())
		if err != nil {
			return err
		}
		userPart = strconv.FormatUint(uint64(uid), 10)
	case sc.GetRunAsGroup() != nil:
		return invalid("run_as_group is set without run_as_user or run_as_username")
	case g.req.Image.Config.User != "":
		var ok bool
		userPart, groupPart, ok = strings.Cut(g.req.Image.Config.User, ":")
		if userPart == "" || (ok && groupPart == "") || strings.Contains(groupPart, ":") {
			return invalid("image USER %q is malformed", g.req.Image.Config.User)
		}
	default:
		userPart = "0"
	}
	if rg := sc.GetRunAsGroup(); rg != nil {
		v, err := checkID("run_as_group", rg.GetValue())
		if err != nil {
			return err
		}
		gid, haveGroup = v, true
	}

	// The user.
	var (
		uid      uint32
		name     string
		entryGID uint32
	)
	if n, err := parseID(userPart); err == nil {
		uid = n
		u, found, err := db.userByID(uid)
		if err != nil {
			return err
		}
		if found {
			name, entryGID = u.name, u.gid
		}
	} else {
		u, found, err := db.userByName(userPart)
		if err != nil {
			return err
		}
		if !found {
			return invalid("user %q is not in the image's /etc/passwd", userPart)
		}
		uid, name, entryGID = u.uid, u.name, u.gid
	}

	// The primary group.
	switch {
	case haveGroup:
	case groupPart != "":
		if n, err := parseID(groupPart); err == nil {
			gid = n
		} else {
			grp, found, err := db.groupByName(groupPart)
			if err != nil {
				return err
			}
			if !found {
				return invalid("group %q is not in the image's /etc/group", groupPart)
			}
			gid = grp.gid
		}
	default:
		gid = entryGID
	}

	// Supplemental groups.
	gids := []uint32{gid}
	switch sc.GetSupplementalGroupsPolicy() {
	case runtime.SupplementalGroupsPolicy_Merge:
		if name != "" {
			groups, err := db.group()
			if err != nil {
				return err
			}
			for _, grp := range groups {
				if grp.name != name && slices.Contains(grp.members, name) {
					gids = append(gids, grp.gid)
				}
			}
		}
	case runtime.SupplementalGroupsPolicy_Strict:
	default:
		return invalid("supplemental_groups_policy %d is unknown", sc.GetSupplementalGroupsPolicy())
	}
	for _, sg := range sc.GetSupplementalGroups() {
		v, err := checkID("supplemental group", sg)
		if err != nil {
			return err
		}
		gids = append(gids, v)
	}
	slices.Sort(gids)
	g.spec.Process.User.UID = uid
	g.spec.Process.User.GID = gid
	g.spec.Process.User.AdditionalGids = slices.Compact(gids)
	return nil
}
