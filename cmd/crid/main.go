// Command crid is a Kubernetes container runtime: a daemon serving the CRI
// v1 RuntimeService and ImageService on a Unix socket.
//
//	crid [daemon] [flags]   serve CRI (the default)
//	crid check [flags]      preflight checks of this node
//	crid config default     print the commented default config
//	crid version            print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/preflight"
	"github.com/crid-dev/crid/pkg/sandbox"
	"github.com/crid-dev/crid/pkg/shim"
)

// version is set at build time: -ldflags "-X main.version=..."
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cmd := "daemon"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "daemon":
		return daemonMain(args)
	case "infra":
		// The pod infra process crid starts itself; not for humans.
		return sandbox.InfraMain(args)
	case "shim":
		// The per-container shim crid starts itself; not for humans.
		return shim.Main(args)
	case "check":
		return checkMain(args)
	case "config":
		if len(args) != 1 || args[0] != "default" {
			fmt.Fprintln(os.Stderr, "usage: crid config default")
			return 2
		}
		fmt.Print(config.DefaultTOML)
		return 0
	case "version":
		fmt.Printf("crid %s\n", version)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "crid: unknown command %q (daemon, check, config default, version)\n", cmd)
		return 2
	}
}

// options are the flags daemon and check share; set ones override the file.
type options struct {
	configPath, listen, root, state, logLevel, cgroupDriver string
	showVersion                                             bool
}

func parseFlags(name string, args []string) (*options, *config.Config, error) {
	fs := flag.NewFlagSet("crid "+name, flag.ContinueOnError)
	o := &options{}
	fs.StringVar(&o.configPath, "config", config.DefaultPath, "config file (TOML); a missing default file means defaults")
	fs.StringVar(&o.listen, "listen", "", "CRI socket path (default /run/crid/crid.sock)")
	fs.StringVar(&o.root, "root", "", "persistent root dir (default /var/lib/crid)")
	fs.StringVar(&o.state, "state", "", "state dir (default /run/crid)")
	fs.StringVar(&o.logLevel, "log-level", "", "debug, info, warn or error")
	fs.StringVar(&o.cgroupDriver, "cgroup-driver", "", "cgroupfs or systemd")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.showVersion {
		return o, nil, nil
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := config.Load(o.configPath, !explicit)
	if err != nil {
		return nil, nil, err
	}
	for _, ov := range []struct {
		val string
		dst *string
	}{{o.listen, &cfg.Listen}, {o.root, &cfg.Root}, {o.state, &cfg.State}, {o.logLevel, &cfg.LogLevel}, {o.cgroupDriver, &cfg.CgroupDriver}} {
		if ov.val != "" {
			*ov.dst = ov.val
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	return o, cfg, nil
}

func checkMain(args []string) int {
	_, cfg, err := parseFlags("check", args)
	if err != nil {
		return usageError(err)
	}
	if !preflight.Print(os.Stdout, preflight.Run(context.Background(), cfg)) {
		return 1
	}
	return 0
}

func daemonMain(args []string) int {
	o, cfg, err := parseFlags("daemon", args)
	if err != nil {
		return usageError(err)
	}
	if o.showVersion {
		fmt.Printf("crid %s\n", version)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "crid: %v\n", err)
		return 1
	}
	return 0
}

func usageError(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(os.Stderr, "crid: %v\n", err)
	return 2
}
