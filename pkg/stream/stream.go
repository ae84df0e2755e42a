// Package stream serves exec, attach and port-forward streams for kubelet
// and kubectl: the CRI Exec/Attach/PortForward RPCs return single-use URLs
// of this server, which speaks the SPDY and websocket protocols through
// k8s.io/cri-streaming and hands the streams to the container manager
// (exec, attach) or to the pod's network namespace (port-forward).
package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	remotecommand "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/sandbox"
	"github.com/crid-dev/crid/pkg/shim"
)

// Server is the streaming server.
type Server struct {
	srv  streaming.Server
	http *http.Server
	lis  net.Listener
	log  *slog.Logger
}

// New listens on the configured address (default 127.0.0.1, an ephemeral
// port) and prepares the server; Serve starts answering.
func New(cfg config.Stream, containers *container.Manager, sandboxes *sandbox.Manager, log *slog.Logger) (*Server, error) {
	addr := net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port))
	var tlsCfg *tls.Config
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("streaming server TLS: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
		lis = tls.NewListener(lis, tlsCfg)
	}
	sc := streaming.DefaultConfig
	sc.Addr = lis.Addr().String()
	sc.BaseURL = &url.URL{Scheme: scheme, Host: lis.Addr().String()}
	sc.TLSConfig = tlsCfg
	if cfg.IdleTimeout.Duration > 0 {
		sc.StreamIdleTimeout = cfg.IdleTimeout.Duration
	}
	srv, err := streaming.NewServer(sc, &adapter{containers: containers, sandboxes: sandboxes})
	if err != nil {
		lis.Close()
		return nil, err
	}
	return &Server{srv: srv, http: &http.Server{Handler: cancelOnHangup(srv), ReadHeaderTimeout: 30 * time.Second}, lis: lis, log: log}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Serve answers until Close.
func (s *Server) Serve() error {
	err := s.http.Serve(s.lis)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server and its streams.
func (s *Server) Close() error { return s.http.Close() }

// GetExec returns the URL of an exec stream.
func (s *Server) GetExec(req *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	return s.srv.GetExec(req)
}

// GetAttach returns the URL of an attach stream.
func (s *Server) GetAttach(req *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	return s.srv.GetAttach(req)
}

// GetPortForward returns the URL of a port-forward stream.
func (s *Server) GetPortForward(req *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	return s.srv.GetPortForward(req)
}

// adapter is the streaming library's view of crid.
type adapter struct {
	containers *container.Manager
	sandboxes  *sandbox.Manager
}

func (a *adapter) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	code, err := a.containers.Exec(ctx, id, cmd, tty, streamIO(ctx, in, out, errw, resize))
	if err != nil {
		return err
	}
	if code != 0 {
		// The library reports the code to the client from this error type.
		return &utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: int(code)}
	}
	return nil
}

func (a *adapter) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return a.containers.Attach(ctx, id, streamIO(ctx, in, out, errw, resize))
}

func (a *adapter) PortForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error {
	return portForward(ctx, a.sandboxes, sandboxID, port, stream)
}

// streamIO converts the library's streams; nil interfaces stay nil.
func streamIO(ctx context.Context, in io.Reader, out, errw io.WriteCloser, resize <-chan remotecommand.TerminalSize) shim.StreamIO {
	var sio shim.StreamIO
	if in != nil {
		sio.Stdin = in
	}
	if out != nil {
		sio.Stdout = out
	}
	if errw != nil {
		sio.Stderr = errw
	}
	if resize != nil {
		ch := make(chan shim.Size, 1)
		go func() {
			defer close(ch)
			for {
				select {
				case <-ctx.Done():
					return
				case sz, ok := <-resize:
					if !ok {
						return
					}
					select {
					case ch <- shim.Size{Width: sz.Width, Height: sz.Height}:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
		sio.Resize = ch
	}
	return sio
}
