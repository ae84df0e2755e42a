package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/hack/testimage"
)

// TestExecWebsocket runs an exec over the websocket flavour of the
// protocol (v4.channel.k8s.io: one byte of channel before each message),
// which kubectl and crictl use besides SPDY.
func TestExecWebsocket(t *testing.T) {
	e := newStreamEnv(t, "")
	id := e.pod("ws").run("c", []string{"sleep", "3600"}, nil)
	resp, err := e.d.Runtime.Exec(ctxT(t), &runtime.ExecRequest{
		ContainerId: id, Stdin: true, Stdout: true, Stderr: true,
		Cmd: []string{"sh", "-c", "read l; echo out:$l; echo err:$l >&2; exit 4"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ws := wsDial(t, resp.Url)
	ws.SetDeadline(time.Now().Add(60 * time.Second))
	if err := websocket.Message.Send(ws, append([]byte{0}, "hi-ws\n"...)); err != nil {
		t.Fatal(err)
	}
	channels := map[byte]string{}
	for {
		var msg []byte
		if err := websocket.Message.Receive(ws, &msg); err != nil {
			break // the server closes the connection after the status
		}
		if len(msg) > 0 {
			channels[msg[0]] += string(msg[1:])
		}
	}
	if channels[1] != "out:hi-ws\n" || channels[2] != "err:hi-ws\n" {
		t.Errorf("websocket exec: stdout %q stderr %q", channels[1], channels[2])
	}
	var st v4Status
	if err := json.Unmarshal([]byte(channels[3]), &st); err != nil || st.Reason != "NonZeroExitCode" ||
		len(st.Details.Causes) != 1 || st.Details.Causes[0].Message != "4" {
		t.Errorf("websocket exec status %q (%v), want exit code 4", channels[3], err)
	}

	// A websocket client that closes (close frame, then TCP) takes its
	// process with it.
	resp, err = e.d.Runtime.Exec(ctxT(t), &runtime.ExecRequest{ContainerId: id, Stdin: true, Stdout: true, Cmd: []string{"sleep", "1099"}})
	if err != nil {
		t.Fatal(err)
	}
	ws = wsDial(t, resp.Url)
	if !waitFor(10*time.Second, func() bool { return e.hasProcess(id, "sleep 1099") }) {
		t.Fatalf("sleep 1099 never ran: %q", e.processes(id))
	}
	ws.Close()
	if !waitFor(10*time.Second, func() bool { return !e.hasProcess(id, "sleep 1099") }) {
		t.Errorf("sleep 1099 still runs 10s after its websocket client closed: %q", e.processes(id))
	}
}

// wsDial opens a v4.channel.k8s.io websocket to a streaming URL.
func wsDial(t *testing.T, rawURL string) *websocket.Conn {
	t.Helper()
	cfg, err := websocket.NewConfig(strings.Replace(rawURL, "http://", "ws://", 1), "http://127.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Protocol = []string{"v4.channel.k8s.io"}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatalf("websocket to %s: %v", rawURL, err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// TestStreamingServerTLS: with [stream] tls_cert and tls_key the URLs are
// https and the server presents that certificate.
func TestStreamingServerTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSignedCert(t)
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	e := newStreamEnv(t, fmt.Sprintf("[stream]\ntls_cert = %q\ntls_key = %q\n", certPath, keyPath))
	id := e.pod("tls").run("c", []string{"sleep", "3600"}, nil)
	execURL := func() string {
		resp, err := e.d.Runtime.Exec(ctxT(t), &runtime.ExecRequest{ContainerId: id, Stdout: true, Cmd: []string{"echo", "over-tls"}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(resp.Url, "https://127.0.0.1:") {
			t.Fatalf("Exec URL %q, want https://127.0.0.1:...", resp.Url)
		}
		return resp.Url
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)

	// Not trusted, or plain HTTP: no stream.
	if conn, tcp, _, err := spdyConnect(ctxT(t), execURL(), &tls.Config{RootCAs: x509.NewCertPool()}, "v4.channel.k8s.io"); err == nil {
		conn.Close()
		tcp.Close()
		t.Errorf("a client that does not trust the certificate connected")
	}
	if conn, tcp, _, err := spdyConnect(ctxT(t), strings.Replace(execURL(), "https://", "http://", 1), nil, "v4.channel.k8s.io"); err == nil {
		conn.Close()
		tcp.Close()
		t.Errorf("plain HTTP connected to the TLS streaming server")
	}

	conn, tcp, _, err := spdyConnect(ctxT(t), execURL(), &tls.Config{RootCAs: pool}, "v4.channel.k8s.io")
	if err != nil {
		t.Fatalf("TLS client trusting the configured certificate: %v", err)
	}
	conn.Close()
	tcp.Close()
	// The whole exec, through the helper's client with the CA.
	c := startRemoteCmdTLS(t, execURL(), &tls.Config{RootCAs: pool}, streamOpts{Stdout: true})
	if code, msg := c.wait(30 * time.Second); code != 0 || c.stdout.String() != "over-tls\n" {
		t.Errorf("exec over TLS: code %d (%s) stdout %q", code, msg, c.stdout.String())
	}
}

// selfSignedCert makes a server certificate for 127.0.0.1 and its key, in PEM.
func selfSignedCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := testimage.SelfSignedCert("crid-stream-e2e", x509.ExtKeyUsageServerAuth)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// TestAttachStdinOnce: with stdin_once the container's stdin closes when
// the first attached client closes its stdin; without it, stdin stays
// open for the next client.
func TestAttachStdinOnce(t *testing.T) {
	e := newStreamEnv(t, "")
	p := e.pod("stdin-once")
	script := "cat; echo cat-ended"
	once := p.run("once", []string{"sh", "-c", script}, func(c *runtime.ContainerConfig) { c.Stdin, c.StdinOnce = true, true })
	kept := p.run("kept", []string{"sh", "-c", script}, func(c *runtime.ContainerConfig) { c.Stdin = true })
	attach := func(id string) *remoteCmd {
		resp, err := e.d.Runtime.Attach(ctxT(t), &runtime.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		return startRemoteCmd(t, resp.Url, streamOpts{Stdin: true, Stdout: true, Stderr: true})
	}
	for _, id := range []string{once, kept} {
		c := attach(id)
		if !waitFor(10*time.Second, func() bool { c.write("line-one\n"); return c.waitOutput("line-one\n", 300*time.Millisecond) }) {
			t.Fatalf("attach to %s: input not echoed by cat: %q", id, c.stdout.String())
		}
		c.closeStdin()
	}
	// stdin_once: cat sees the end, the container exits 0.
	if !waitFor(10*time.Second, func() bool {
		st, err := e.d.Runtime.ContainerStatus(ctxT(t), &runtime.ContainerStatusRequest{ContainerId: once})
		return err == nil && st.Status.State == runtime.ContainerState_CONTAINER_EXITED
	}) {
		t.Errorf("stdin_once container still runs after the attached client closed stdin")
	} else if !strings.Contains(p.logText("once"), "cat-ended") {
		t.Errorf("stdin_once container log %q lacks cat-ended", p.logText("once"))
	}
	// Without stdin_once the next client can still write.
	c := attach(kept)
	if !waitFor(10*time.Second, func() bool { c.write("line-two\n"); return c.waitOutput("line-two\n", 300*time.Millisecond) }) {
		t.Fatalf("second attach to the container without stdin_once: %q, log %q", c.stdout.String(), p.logText("kept"))
	}
	if strings.Contains(p.logText("kept"), "cat-ended") {
		t.Errorf("a client closing its stdin closed the stdin of a container without stdin_once")
	}
}

// TestStreamIdleTimeout: with [stream] idle_timeout, a stream with no
// traffic is closed by the server, and its process does not outlive it;
// [stream] port fixes the port of the URLs.
func TestStreamIdleTimeout(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	lis.Close()
	e := newStreamEnv(t, fmt.Sprintf("[stream]\naddress = \"127.0.0.1\"\nport = %d\nidle_timeout = \"1s\"\n", port))
	id := e.pod("idle").run("c", []string{"sleep", "3600"}, nil)
	resp, err := e.d.Runtime.Exec(ctxT(t), &runtime.ExecRequest{ContainerId: id, Stdout: true, Cmd: []string{"sleep", "1098"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("http://127.0.0.1:%d/", port); !strings.HasPrefix(resp.Url, want) {
		t.Fatalf("Exec URL %q, want it on the configured port: %s...", resp.Url, want)
	}
	c := startRemoteCmd(t, resp.Url, streamOpts{Stdout: true})
	select {
	case <-c.conn.CloseChan():
	case <-time.After(30 * time.Second):
		t.Fatal("an idle exec stream was not closed 30s into a 1s idle timeout")
	}
	if !waitFor(10*time.Second, func() bool { return !e.hasProcess(id, "sleep 1098") }) {
		t.Errorf("sleep 1098 still runs 10s after the server closed its idle stream: %q", e.processes(id))
	}
}
