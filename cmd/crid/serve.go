package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/image"
	"github.com/crid-dev/crid/pkg/image/registry"
	"github.com/crid-dev/crid/pkg/metrics"
	"github.com/crid-dev/crid/pkg/netns"
	"github.com/crid-dev/crid/pkg/oci"
	"github.com/crid-dev/crid/pkg/sandbox"
	"github.com/crid-dev/crid/pkg/server"
	"github.com/crid-dev/crid/pkg/store"
	"github.com/crid-dev/crid/pkg/stream"
)

const (
	dbLockTimeout   = 2 * time.Second
	shutdownTimeout = 30 * time.Second
)

// serve runs the daemon until ctx is cancelled, then drains in-flight RPCs.
func serve(ctx context.Context, cfg *config.Config) error {
	level, _ := config.ParseLogLevel(cfg.LogLevel)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	for _, dir := range []string{cfg.Root, cfg.State} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	db, err := store.Open(filepath.Join(cfg.Root, "meta.db"), dbLockTimeout)
	if err != nil {
		return err
	}
	defer db.Close()

	// The CNI cache lives under root: host-local leases outlive a reboot, so
	// the cache DEL needs after one must too.
	network, err := netns.NewManager(cfg.CNI.ConfDir, cfg.CNI.BinDirs, filepath.Join(cfg.Root, "cni-cache"), netns.WithLogger(log))
	if err != nil {
		return fmt.Errorf("CNI: %w", err)
	}
	network.Start(ctx)

	platform, err := registry.ParsePlatform(cfg.Registry.Platform)
	if err != nil {
		return err
	}
	images, err := image.NewService(ctx, db, image.Options{
		Root:           cfg.Root,
		Registry:       registry.NewClient(cfg.Registry.ConfigPath, platform, log),
		MaxConcurrency: cfg.Registry.MaxConcurrency,
		Log:            log,
	})
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}

	sandboxes := sandbox.NewManager(db, network, sandbox.Options{State: cfg.State, ShmSize: cfg.ShmSize, CgroupDriver: cfg.CgroupDriver, Log: log})
	if err := sandboxes.Recover(ctx); err != nil {
		// What could not be cleaned now stays recorded and is retried at the next start.
		log.Error("sandbox recovery incomplete", "error", err)
	}

	host, err := oci.DetectHost(cfg.CgroupDriver)
	if err != nil {
		return fmt.Errorf("detect host: %w", err)
	}
	containers, err := container.NewManager(db, images, sandboxes, container.Options{
		Root: cfg.Root, State: cfg.State, Runtimes: resolveRuntimes(cfg, log), Host: host, Log: log,
	})
	if err != nil {
		return err
	}
	if err := containers.Recover(ctx); err != nil {
		log.Error("container recovery incomplete", "error", err)
	}

	streams, err := stream.New(cfg.Stream, containers, sandboxes, log)
	if err != nil {
		return err
	}
	go func() {
		if err := streams.Serve(); err != nil {
			log.Error("streaming server stopped", "error", err)
		}
	}()
	defer streams.Close()
	log.Info("streaming server listening", "address", streams.Addr())

	var observe server.Observer
	if cfg.Metrics.Address != "" {
		m := metrics.New(objectCounts(db))
		mlis, err := net.Listen("tcp", cfg.Metrics.Address)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		msrv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go msrv.Serve(mlis)
		defer msrv.Close()
		observe = m.ObserveRPC
		log.Info("metrics listening", "address", mlis.Addr().String())
	}

	lis, err := listenUnix(cfg.Listen)
	if err != nil {
		return err
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(server.UnaryInterceptor(log, observe)),
		grpc.ChainStreamInterceptor(server.StreamInterceptor(log, observe)),
	)
	runtime.RegisterRuntimeServiceServer(srv, server.NewRuntimeService(server.RuntimeDeps{
		Config: cfg, DB: db, Network: network, Sandboxes: sandboxes, Containers: containers, Stream: streams, Version: version, Log: log,
	}))
	runtime.RegisterImageServiceServer(srv, server.NewImageService(images, log))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	log.Info("crid serving", "version", version, "listen", cfg.Listen, "root", cfg.Root, "state", cfg.State)

	select {
	case err := <-errc:
		os.Remove(cfg.Listen)
		return fmt.Errorf("serve %s: %w", cfg.Listen, err)
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight RPCs")
	drained := make(chan struct{})
	go func() { srv.GracefulStop(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(shutdownTimeout):
		log.Warn("in-flight RPCs did not finish in time; closing them", "timeout", shutdownTimeout)
		srv.Stop()
	}
	os.Remove(cfg.Listen)
	log.Info("crid stopped")
	return nil
}

// listenUnix creates the CRI socket with mode 0660, replacing a stale socket
// left by a crashed crid but never a live one or a file that is not a socket.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; refusing to replace it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is served by another process (another crid?)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	// Connecting needs write permission, which the umask already withholds
	// from group and others until the chmod below.
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		lis.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return lis, nil
}

// resolveRuntimes turns the [runtimes] table into absolute binaries and
// state dirs (default <state>/runc/<handler>, private to this crid).
func resolveRuntimes(cfg *config.Config, log *slog.Logger) map[string]container.Runtime {
	out := map[string]container.Runtime{}
	for name, rt := range cfg.Runtimes {
		path, err := exec.LookPath(rt.Path)
		if err != nil {
			log.Warn("OCI runtime binary not found; its containers will fail to create", "handler", name, "path", rt.Path, "error", err)
			path = rt.Path
		}
		root := rt.Root
		if root == "" {
			root = filepath.Join(cfg.State, "runc", name)
		}
		out[name] = container.Runtime{Path: path, Root: root, SystemdCgroup: rt.SystemdCgroup || cfg.CgroupDriver == "systemd"}
	}
	return out
}

// objectCounts counts containers and pod sandboxes by state for metrics.
func objectCounts(db *store.DB) metrics.Counts {
	return func() (map[string]map[string]int, error) {
		out := map[string]map[string]int{"containers": {}, "pod_sandboxes": {}}
		err := db.View(func(tx *store.Tx) error {
			cs, err := tx.Containers()
			if err != nil {
				return err
			}
			for _, c := range cs {
				out["containers"][string(c.State)]++
			}
			sbs, err := tx.Sandboxes()
			for _, sb := range sbs {
				out["pod_sandboxes"][string(sb.State)]++
			}
			return err
		})
		return out, err
	}
}
