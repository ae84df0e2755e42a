package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"

	"github.com/crid-dev/crid/hack/testimage"
	"github.com/crid-dev/crid/test/framework"
)

var (
	streamImageOnce sync.Once
	streamImage     *testimage.Built
	streamImageErr  error
)

// streamEnv is a crid with a private network and the busybox test image
// pulled from a local registry.
type streamEnv struct {
	t     *testing.T
	d     *framework.Daemon
	n     *framework.Network
	image string
}

func newStreamEnv(t *testing.T, extraConfig string) *streamEnv {
	t.Helper()
	streamImageOnce.Do(func() { streamImage, streamImageErr = testimage.Busybox() })
	if streamImageErr != nil {
		t.Fatal(streamImageErr)
	}
	reg := framework.StartRegistry(t, "", "")
	reg.Push(t, "crid-test/busybox", streamImage, "latest")
	n := framework.NewNetwork(t, "")
	d := framework.Start(t, framework.Options{CNIConfDir: n.ConfDir, ExtraConfig: extraConfig})
	ref := reg.Host + "/crid-test/busybox:latest"
	pull(t, d, ref, nil)
	return &streamEnv{t: t, d: d, n: n, image: ref}
}

// streamPod is a running pod; its containers and itself are removed when
// the test ends, even if it fails.
type streamPod struct {
	e   *streamEnv
	id  string
	cfg *runtime.PodSandboxConfig
}

func (e *streamEnv) pod(name string) *streamPod {
	e.t.Helper()
	cfg := podConfig(name)
	cfg.LogDirectory = filepath.Join(e.t.TempDir(), "logs")
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		e.t.Fatal(err)
	}
	// Each container its own PID namespace, as kubelet asks by default.
	cfg.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER},
	}}
	return &streamPod{e: e, id: runPod(e.t, e.d, cfg), cfg: cfg}
}

// run creates and starts a busybox container running cmd; mutate may
// change its config first.
func (p *streamPod) run(name string, cmd []string, mutate func(*runtime.ContainerConfig)) string {
	t := p.e.t
	t.Helper()
	id := p.create(name, cmd, mutate)
	if _, err := p.e.d.Runtime.StartContainer(ctxT(t), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	return id
}

func (p *streamPod) create(name string, cmd []string, mutate func(*runtime.ContainerConfig)) string {
	t := p.e.t
	t.Helper()
	cfg := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name},
		Image:    &runtime.ImageSpec{Image: p.e.image},
		Command:  cmd,
		LogPath:  name + ".log",
		Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER},
		}},
	}
	if mutate != nil {
		mutate(cfg)
	}
	resp, err := p.e.d.Runtime.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.cfg})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	id := resp.ContainerId
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p.e.d.Runtime.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id})
		p.e.d.Runtime.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id})
	})
	return id
}

// logText is the text of a container's CRI log (the part after
// "<time> <stream> <tag> " on each line).
func (p *streamPod) logText(name string) string {
	data, _ := os.ReadFile(filepath.Join(p.cfg.LogDirectory, name+".log"))
	var b strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.SplitN(line, " ", 4); len(f) == 4 {
			b.WriteString(f[3])
			if f[2] == "F" {
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}

func (e *streamEnv) execSync(id string, timeout int64, cmd ...string) (*runtime.ExecSyncResponse, error) {
	return e.d.Runtime.ExecSync(ctxT(e.t), &runtime.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: timeout})
}

// processes lists the command lines of the processes in the container
// (its own PID namespace), from busybox ps run by ExecSync.
func (e *streamEnv) processes(id string) []string {
	e.t.Helper()
	r, err := e.execSync(id, 30, "ps", "-o", "args")
	if err != nil || r.ExitCode != 0 {
		e.t.Fatalf("ps in %s: %v %v %s", id, err, r.GetExitCode(), r.GetStderr())
	}
	return strings.Split(strings.TrimSpace(string(r.Stdout)), "\n")
}

// hasProcess reports whether a process with exactly this command line
// runs in the container.
func (e *streamEnv) hasProcess(id, cmdline string) bool {
	for _, p := range e.processes(id) {
		if strings.TrimSpace(p) == cmdline {
			return true
		}
	}
	return false
}

// shimSockets counts the sockets the container's shim holds open: its
// listener plus one per connected crid client (exec, attach, control).
func (e *streamEnv) shimSockets(id string) int {
	e.t.Helper()
	resp, err := e.d.Runtime.ContainerStatus(ctxT(e.t), &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		e.t.Fatal(err)
	}
	var info struct {
		ShimPid int `json:"shimPid"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.ShimPid == 0 {
		e.t.Fatalf("shim pid of %s from %q: %v", id, resp.Info["info"], err)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", info.ShimPid))
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", info.ShimPid, fd.Name())); strings.HasPrefix(target, "socket:") {
			n++
		}
	}
	return n
}

// waitFor polls cond every 50ms for up to timeout.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// checkStreamURL checks that a streaming URL points to the server crid
// runs on 127.0.0.1 (its default address).
func checkStreamURL(t *testing.T, raw string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Port() == "" || u.Port() == "0" {
		t.Fatalf("streaming URL %q: want http://127.0.0.1:<port>/... (%v)", raw, err)
	}
}

// spdyConnect upgrades a streaming URL to a SPDY connection speaking one
// of protocols, on a TCP (or TLS) connection of its own, which it returns
// too so that a test can drop it as a killed client would. The SPDY side
// is the client of k8s.io/streaming.
func spdyConnect(ctx context.Context, rawURL string, tlsCfg *tls.Config, protocols ...string) (httpstream.Connection, net.Conn, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, "", err
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	if u.Scheme == "https" {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tlsCfg}).DialContext(ctx, "tcp", u.Host)
	} else {
		conn, err = d.DialContext(ctx, "tcp", u.Host)
	}
	if err != nil {
		return nil, nil, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, nil)
	if err != nil {
		conn.Close()
		return nil, nil, "", err
	}
	req.Header.Set(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	req.Header.Set(httpstream.HeaderUpgrade, spdy.HeaderSpdy31)
	for _, p := range protocols {
		req.Header.Add(httpstream.HeaderProtocolVersion, p)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	var resp *http.Response
	if err = req.Write(conn); err == nil {
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil {
		conn.Close()
		return nil, nil, "", err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		conn.Close()
		return nil, nil, "", fmt.Errorf("upgrade refused: %s: %s", resp.Status, body)
	}
	conn.SetDeadline(time.Time{})
	sc, err := spdy.NewClientConnection(&bufferedConn{Conn: conn, r: br})
	if err != nil {
		conn.Close()
		return nil, nil, "", err
	}
	return sc, conn, resp.Header.Get(httpstream.HeaderProtocolVersion), nil
}

// bufferedConn reads what the HTTP response reader buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// syncBuffer collects a stream's output for reading while it grows.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// streamOpts selects an exec's or attach's streams.
type streamOpts struct{ Stdin, Stdout, Stderr, TTY bool }

// remoteCmd is the client side of a v4.channel.k8s.io exec or attach over
// SPDY: one stream per channel, told apart by their streamType header, and
// an error stream that carries the final status as JSON.
type remoteCmd struct {
	t              *testing.T
	conn           httpstream.Connection
	tcp            net.Conn // under conn
	stdin, resize  httpstream.Stream
	stdout, stderr syncBuffer
	copied         sync.WaitGroup
	status         chan []byte // the error stream's content, at its end
}

// v4Status is the final status of a v4 exec or attach.
type v4Status struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Details struct {
		Causes []struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"causes"`
	} `json:"details"`
}

// startRemoteCmd connects to an Exec or Attach URL and opens the streams
// o asks for. The connection is closed when the test ends.
func startRemoteCmd(t *testing.T, rawURL string, o streamOpts) *remoteCmd {
	t.Helper()
	return startRemoteCmdTLS(t, rawURL, nil, o)
}

// startRemoteCmdTLS is startRemoteCmd for an https URL.
func startRemoteCmdTLS(t *testing.T, rawURL string, tlsCfg *tls.Config, o streamOpts) *remoteCmd {
	t.Helper()
	conn, tcp, proto, err := spdyConnect(ctxT(t), rawURL, tlsCfg, "v4.channel.k8s.io")
	if err != nil {
		t.Fatalf("connect %s: %v", rawURL, err)
	}
	t.Cleanup(func() { tcp.Close(); conn.Close() })
	if proto != "v4.channel.k8s.io" {
		t.Fatalf("negotiated protocol %q, want v4.channel.k8s.io", proto)
	}
	c := &remoteCmd{t: t, conn: conn, tcp: tcp, status: make(chan []byte, 1)}
	open := func(typ string) httpstream.Stream {
		h := http.Header{}
		h.Set("streamType", typ)
		s, err := conn.CreateStream(h)
		if err != nil {
			t.Fatalf("create %s stream: %v", typ, err)
		}
		return s
	}
	errStream := open("error")
	errStream.Close() // the client sends nothing on it
	go func() {
		data, _ := io.ReadAll(errStream)
		c.status <- data
	}()
	if o.Stdin {
		c.stdin = open("stdin")
	}
	for _, s := range []struct {
		want bool
		typ  string
		dst  io.Writer
	}{{o.Stdout, "stdout", &c.stdout}, {o.Stderr, "stderr", &c.stderr}} {
		if !s.want {
			continue
		}
		st := open(s.typ)
		st.Close()
		c.copied.Add(1)
		go func(dst io.Writer) { defer c.copied.Done(); io.Copy(dst, st) }(s.dst)
	}
	if o.TTY {
		c.resize = open("resize")
	}
	return c
}

func (c *remoteCmd) write(s string) {
	c.t.Helper()
	if _, err := c.stdin.Write([]byte(s)); err != nil {
		c.t.Fatalf("write stdin: %v", err)
	}
}

// disconnect leaves as a client can: "TCP drop" closes the TCP
// connection with no SPDY goodbye, as a killed kubectl does; "SPDY close"
// resets the streams, sends GOAWAY and closes the connection once the
// streams are gone, as client-go does when its context is cancelled.
func (c *remoteCmd) disconnect(how string) {
	c.t.Helper()
	switch how {
	case "TCP drop":
		c.tcp.Close()
	case "SPDY close":
		c.conn.Close()
	default:
		c.t.Fatalf("disconnect %q", how)
	}
}

// closeStdin ends stdin (a half-close of its stream).
func (c *remoteCmd) closeStdin() { c.stdin.Close() }

// resizeTo sends a terminal size.
func (c *remoteCmd) resizeTo(width, height uint16) {
	c.t.Helper()
	data, _ := json.Marshal(map[string]uint16{"Width": width, "Height": height})
	if _, err := c.resize.Write(data); err != nil {
		c.t.Fatalf("write resize: %v", err)
	}
}

// waitOutput waits until stdout contains want.
func (c *remoteCmd) waitOutput(want string, timeout time.Duration) bool {
	return waitFor(timeout, func() bool { return strings.Contains(c.stdout.String(), want) })
}

// wait waits for the final status and the end of the output streams and
// returns the exit code the status reports (0 for Success); msg is the
// status message of a failure that carries no exit code.
func (c *remoteCmd) wait(timeout time.Duration) (code int, msg string) {
	c.t.Helper()
	var data []byte
	select {
	case data = <-c.status:
	case <-time.After(timeout):
		c.t.Fatalf("no final status after %s; stdout %q stderr %q", timeout, c.stdout.String(), c.stderr.String())
	}
	done := make(chan struct{})
	go func() { c.copied.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		c.t.Fatalf("output streams still open %s after the status %s", timeout, data)
	}
	if len(data) == 0 {
		return 0, ""
	}
	var st v4Status
	if err := json.Unmarshal(data, &st); err != nil {
		c.t.Fatalf("status %q: %v", data, err)
	}
	if st.Status == "Success" {
		return 0, ""
	}
	if st.Reason == "NonZeroExitCode" {
		for _, cause := range st.Details.Causes {
			if cause.Reason == "ExitCode" {
				n, err := strconv.Atoi(cause.Message)
				if err != nil {
					c.t.Fatalf("exit code cause %q", cause.Message)
				}
				return n, st.Message
			}
		}
	}
	return -1, st.Message
}

// portForwardConn is one connection to a pod port through a port-forward
// SPDY connection (portforward.k8s.io): a data and an error stream sharing
// a request id.
type portForwardConn struct {
	data   httpstream.Stream
	errMsg chan string
}

func openPortForward(conn httpstream.Connection, port int, requestID int) (*portForwardConn, error) {
	h := http.Header{}
	h.Set("port", strconv.Itoa(port))
	h.Set("requestID", strconv.Itoa(requestID))
	h.Set("streamType", "error")
	errStream, err := conn.CreateStream(h)
	if err != nil {
		return nil, err
	}
	errStream.Close()
	pc := &portForwardConn{errMsg: make(chan string, 1)}
	go func() {
		data, _ := io.ReadAll(errStream)
		pc.errMsg <- string(data)
	}()
	h.Set("streamType", "data")
	if pc.data, err = conn.CreateStream(h); err != nil {
		return nil, err
	}
	return pc, nil
}

// roundTrip sends req on the forwarded connection, half-closes it and
// returns all the pod sent back, and what the error stream said.
func (pc *portForwardConn) roundTrip(req string, timeout time.Duration) (string, string, error) {
	if _, err := pc.data.Write([]byte(req)); err != nil {
		return "", "", err
	}
	pc.data.Close()
	type result struct {
		data []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() { data, err := io.ReadAll(pc.data); ch <- result{data, err} }()
	var r result
	select {
	case r = <-ch:
	case <-time.After(timeout):
		pc.data.Reset()
		return "", "", fmt.Errorf("no end of the forwarded stream after %s", timeout)
	}
	select {
	case msg := <-pc.errMsg:
		return string(r.data), msg, r.err
	case <-time.After(timeout):
		return string(r.data), "", fmt.Errorf("error stream still open %s after the data stream ended", timeout)
	}
}

// forwardLocal listens on 127.0.0.1 (an ephemeral port) and forwards each
// connection to port in the pod through conn, as kubectl port-forward
// does; it returns the local address. It stops when the test ends.
func forwardLocal(t *testing.T, conn httpstream.Connection, port int) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for id := 0; ; id++ {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			pc, err := openPortForward(conn, port, id)
			if err != nil {
				c.Close()
				continue
			}
			go func() {
				io.Copy(pc.data, c)
				pc.data.Close()
			}()
			go func() {
				io.Copy(c, pc.data)
				c.Close()
			}()
		}
	}()
	return lis.Addr().String()
}
