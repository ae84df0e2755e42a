package oci

import (
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// args applies Kubernetes' rules for command and args over the image's
// entrypoint and cmd:
//
//	command set      -> command + args (the image is ignored)
//	only args set    -> entrypoint + args
//	neither set      -> entrypoint + cmd
//
// An entrypoint of [""] means "no entrypoint", as in Docker.
func (g *gen) args() error {
	command, args := g.cfg.GetCommand(), g.cfg.GetArgs()
	img := g.req.Image.Config
	var argv []string
	if len(command) > 0 {
		argv = append(append(argv, command...), args...)
	} else {
		if !(len(img.Entrypoint) == 1 && img.Entrypoint[0] == "") {
			argv = append(argv, img.Entrypoint...)
		}
		if len(args) > 0 {
			argv = append(argv, args...)
		} else {
			argv = append(argv, img.Cmd...)
		}
	}
	if len(argv) == 0 || argv[0] == "" {
		return invalid("no command: neither the container config nor the image names one")
	}
	g.spec.Process.Args = argv
	return nil
}

// env builds the environment: a default PATH, HOSTNAME, then the image's
// env, then the CRI env; a later value of a key replaces an earlier one in
// place. A tty adds TERM=xterm unless TERM is already set.
func (g *gen) env() error {
	hostname := g.req.Sandbox.Hostname
	if hostname == "" {
		hostname = g.host.Hostname
	}
	var e envList
	e.set(defaultPathEnv)
	if hostname != "" {
		e.set("HOSTNAME=" + hostname)
	}
	for _, kv := range g.req.Image.Config.Env {
		if k, _, _ := strings.Cut(kv, "="); k == "" {
			continue // malformed image env entries are dropped, as Docker does
		}
		e.set(kv)
	}
	for _, kv := range g.cfg.GetEnvs() {
		if kv.GetKey() == "" || strings.ContainsAny(kv.GetKey(), "=\x00") {
			return invalid("environment variable name %q is invalid", kv.GetKey())
		}
		if strings.ContainsRune(string(kv.GetValue()), 0) {
			return invalid("environment variable %s holds a NUL byte", kv.GetKey())
		}
		e.set(kv.GetKey() + "=" + string(kv.GetValue()))
	}
	if g.cfg.GetTty() && !e.has("TERM") {
		e.set("TERM=xterm")
	}
	g.spec.Process.Env = e.list
	return nil
}

type envList struct {
	list  []string
	index map[string]int
}

func (e *envList) set(kv string) {
	if e.index == nil {
		e.index = map[string]int{}
	}
	k, _, _ := strings.Cut(kv, "=")
	if i, ok := e.index[k]; ok {
		e.list[i] = kv
		return
	}
	e.index[k] = len(e.list)
	e.list = append(e.list, kv)
}

func (e *envList) has(k string) bool { _, ok := e.index[k]; return ok }

// cwd: the CRI working dir, else the image's, else "/". A relative image
// working dir is taken from "/"; a relative CRI one is an error.
func (g *gen) cwd() error {
	wd := g.cfg.GetWorkingDir()
	switch {
	case wd != "":
		if !path.IsAbs(wd) {
			return invalid("working dir %q is not absolute", wd)
		}
	case g.req.Image.Config.WorkingDir != "":
		wd = g.req.Image.Config.WorkingDir
	default:
		wd = "/"
	}
	g.spec.Process.Cwd = path.Clean("/" + wd)
	return nil
}

// rlimits sets RLIMIT_NOFILE to 1048576, or to crid's own hard limit when
// crid may not raise it (no CAP_SYS_RESOURCE) and that is lower: the runtime
// would otherwise fail to apply it.
func (g *gen) rlimits() error {
	n := defaultNofile
	if !g.host.HasCapSysResource && g.host.NofileHardLimit > 0 && g.host.NofileHardLimit < n {
		n = g.host.NofileHardLimit
	}
	g.spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: n, Soft: n}}
	return nil
}
