package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/netns"
	"github.com/crid-dev/crid/pkg/sandbox"
	"github.com/crid-dev/crid/pkg/store"
)

// portForward connects stream to port on the pod's loopback, inside its
// network namespace (so that processes listening only on the pod's
// 127.0.0.1 are reachable too), and copies both ways until either ends.
func portForward(ctx context.Context, sandboxes *sandbox.Manager, sandboxID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	if port <= 0 || port > 65535 {
		return fmt.Errorf("port %d is not a TCP port: %w", port, errdefs.ErrInvalidArgument)
	}
	sb, err := sandboxes.Resolve(sandboxID)
	if err != nil {
		return err
	}
	if sb.State != store.StateReady {
		return fmt.Errorf("pod sandbox %s is not ready: %w", sb.ID, errdefs.ErrFailedPrecondition)
	}
	conn, err := dialInPod(ctx, sb.NetNSPath, int(port))
	if err != nil {
		return fmt.Errorf("port-forward to port %d of pod %s: %w", port, sb.ID, err)
	}
	defer conn.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite() // the client is done sending; let the server answer
		}
	}()
	_, err = io.Copy(stream, conn)
	stream.Close()
	wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("port-forward to port %d of pod %s: %w", port, sb.ID, err)
	}
	return nil
}

// dialInPod dials the pod's loopback (IPv4, then IPv6) from inside its
// network namespace; "" is the host's (host-network pods).
func dialInPod(ctx context.Context, nsPath string, port int) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	dial := func() (conn net.Conn, err error) {
		for _, host := range []string{"127.0.0.1", "::1"} {
			if conn, err = d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port))); err == nil {
				return conn, nil
			}
		}
		return nil, err
	}
	if nsPath == "" {
		return dial()
	}
	ns, err := netns.Load(nsPath)
	if err != nil {
		return nil, err
	}
	var conn net.Conn
	// The socket is created on the thread inside the namespace and stays
	// in it; using it from other threads afterwards is fine.
	err = ns.Do(func() (err error) { conn, err = dial(); return err })
	return conn, err
}
