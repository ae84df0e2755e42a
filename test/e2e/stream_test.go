package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestExecSync covers ExecSync's output, exit codes and output cap.
func TestExecSync(t *testing.T) {
	e := newStreamEnv(t, "")
	id := e.pod("execsync").run("c", []string{"sleep", "3600"}, func(c *runtime.ContainerConfig) {
		c.Envs = []*runtime.KeyValue{{Key: "CRID_VAR", Value: []byte("from-config")}}
		c.WorkingDir = "/tmp"
	})

	r, err := e.execSync(id, 0, "sh", "-c", "echo out; echo err >&2; echo more; exit 3")
	if err != nil {
		t.Fatalf("ExecSync: %v", err)
	}
	if string(r.Stdout) != "out\nmore\n" || string(r.Stderr) != "err\n" || r.ExitCode != 3 {
		t.Errorf("ExecSync = stdout %q stderr %q code %d, want %q %q 3", r.Stdout, r.Stderr, r.ExitCode, "out\nmore\n", "err\n")
	}
	// A timeout the command stays well within changes nothing.
	r, err = e.execSync(id, 30, "echo", "in time")
	if err != nil || string(r.Stdout) != "in time\n" || r.ExitCode != 0 {
		t.Errorf("ExecSync with timeout 30 = %v, %v", r, err)
	}
	// Runs in the container: its own PID namespace, its rootfs.
	r, err = e.execSync(id, 0, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; cat /etc/hostname")
	if err != nil || !strings.HasPrefix(string(r.Stdout), "sleep 3600 ") {
		t.Errorf("ExecSync in the container's pid namespace: %q %v", r.GetStdout(), err)
	}
	// The container's environment and working directory apply.
	r, err = e.execSync(id, 0, "sh", "-c", "echo $CRID_VAR; pwd")
	if err != nil || string(r.Stdout) != "from-config\n/tmp\n" {
		t.Errorf("ExecSync env and cwd: %q %v", r.GetStdout(), err)
	}
	// No stdin: a reader sees its end at once.
	if r, err := e.execSync(id, 30, "cat"); err != nil || r.ExitCode != 0 || len(r.Stdout) != 0 {
		t.Errorf("ExecSync cat: %v %v", r, err)
	}
	// A child left running in the background with the output open does
	// not hold the call until it ends.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err = e.d.Runtime.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "sleep 1010 & echo started"}})
	if err != nil || string(r.Stdout) != "started\n" {
		t.Errorf("ExecSync leaving a background child: %q %v", r.GetStdout(), err)
	}
	// A command that cannot start is an error naming it, not an exit code.
	if r, err := e.execSync(id, 10, "/no/such/binary"); err == nil || !strings.Contains(err.Error(), "/no/such/binary") {
		t.Errorf("ExecSync of a missing binary: %v, %v; want an error naming it", r, err)
	}
	// Concurrent calls each get their own output.
	errs := make(chan error, 10)
	for i := range 10 {
		go func() {
			want := fmt.Sprintf("call-%d", i)
			r, err := e.execSync(id, 30, "sh", "-c", "sleep 0.2; echo "+want+"; echo "+want+" >&2")
			if err == nil && (string(r.Stdout) != want+"\n" || string(r.Stderr) != want+"\n") {
				err = fmt.Errorf("%s: stdout %q stderr %q", want, r.Stdout, r.Stderr)
			}
			errs <- err
		}()
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent ExecSync: %v", err)
		}
	}
	for _, tc := range []struct {
		cmd  []string
		code int32
	}{
		{[]string{"true"}, 0},
		{[]string{"false"}, 1},
		{[]string{"sh", "-c", "exit 255"}, 255},
		{[]string{"sh", "-c", "kill -9 $$"}, 137},
	} {
		r, err := e.execSync(id, 0, tc.cmd...)
		if err != nil || r.ExitCode != tc.code {
			t.Errorf("ExecSync %q: code %d err %v, want code %d", tc.cmd, r.GetExitCode(), err, tc.code)
		}
	}
}

// TestExecSyncBigOutputFitsKubelet: output past the cap is cut so that the
// answer still fits the 16 MiB a CRI client such as kubelet or crictl
// accepts (the framework's client has the same limit): a probe that
// prints too much gets its output truncated, not a transport error.
func TestExecSyncBigOutputFitsKubelet(t *testing.T) {
	e := newStreamEnv(t, "")
	id := e.pod("big").run("c", []string{"sleep", "3600"}, nil)
	r, err := e.execSync(id, 60, "sh", "-c", "head -c 17825792 /dev/zero; head -c 1000 /dev/zero >&2; echo done >&2")
	if err != nil {
		t.Fatalf("ExecSync of 17 MiB of output, through a client that takes 16 MiB messages: %v", err)
	}
	if len(r.Stdout) == 0 || len(r.Stdout) > 16<<20 || len(r.Stderr) != 1005 || r.ExitCode != 0 {
		t.Errorf("ExecSync of 17 MiB: stdout %d bytes, stderr %d, code %d; want 1..16 MiB, 1005, 0", len(r.Stdout), len(r.Stderr), r.ExitCode)
	}
}

// TestExecSyncTimeoutKillsCommand: past its timeout the call fails with
// DeadlineExceeded and the command no longer runs in the container.
func TestExecSyncTimeoutKillsCommand(t *testing.T) {
	e := newStreamEnv(t, "")
	id := e.pod("timeout").run("c", []string{"sleep", "3600"}, nil)
	_, err := e.execSync(id, 1, "sleep", "1001")
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("ExecSync sleep 1001 with timeout 1: %v, want DeadlineExceeded", err)
	}
	if !waitFor(10*time.Second, func() bool { return !e.hasProcess(id, "sleep 1001") }) {
		t.Fatalf("the timed-out command still runs: %q", e.processes(id))
	}
	// The container is unharmed and takes further execs.
	if r, err := e.execSync(id, 10, "echo", "ok"); err != nil || string(r.Stdout) != "ok\n" {
		t.Fatalf("ExecSync after a timeout: %v %v", r, err)
	}
}

// TestExecSyncNotRunning: ExecSync into a container that was never
// started, was stopped, or does not exist fails with a clear error.
func TestExecSyncNotRunning(t *testing.T) {
	e := newStreamEnv(t, "")
	p := e.pod("notrunning")
	created := p.create("created", []string{"sleep", "3600"}, nil)
	stopped := p.run("stopped", []string{"sleep", "3600"}, nil)
	if _, err := e.d.Runtime.StopContainer(ctxT(t), &runtime.StopContainerRequest{ContainerId: stopped, Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]string{"created": created, "stopped": stopped} {
		_, err := e.execSync(id, 10, "true")
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not running") {
			t.Errorf("ExecSync in the %s container: %v, want FailedPrecondition saying it is not running", name, err)
		}
		_, err = e.d.Runtime.Exec(ctxT(t), &runtime.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true})
		if status.Code(err) != codes.FailedPrecondition {
			t.Errorf("Exec in the %s container: %v, want FailedPrecondition", name, err)
		}
		_, err = e.d.Runtime.Attach(ctxT(t), &runtime.AttachRequest{ContainerId: id, Stdout: true})
		if status.Code(err) != codes.FailedPrecondition {
			t.Errorf("Attach to the %s container: %v, want FailedPrecondition", name, err)
		}
	}
	if _, err := e.execSync(strings.Repeat("f", 64), 10, "true"); status.Code(err) != codes.NotFound {
		t.Errorf("ExecSync in an unknown container: %v, want NotFound", err)
	}
	for _, req := range []*runtime.ExecSyncRequest{
		{ContainerId: stopped},
		{Cmd: []string{"true"}},
		{ContainerId: stopped, Cmd: []string{"true"}, Timeout: -1},
	} {
		if _, err := e.d.Runtime.ExecSync(ctxT(t), req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("ExecSync %v: %v, want InvalidArgument", req, err)
		}
	}
}

// TestExecStream runs an exec without a terminal through the streaming
// server: stdin piped in and closed, stdout and stderr apart, exit code.
func TestExecStream(t *testing.T) {
	e := newStreamEnv(t, "")
	id := e.pod("exec").run("c", []string{"sleep", "3600"}, nil)
	resp, err := e.d.Runtime.Exec(ctxT(t), &runtime.ExecRequest{
		ContainerId: id, Stdin: true, Stdout: true, Stderr: true,
		Cmd: []string{"sh", "-c", "read l; echo out:$l; echo err:$l >&2; cat; exit 5"},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkStreamURL(t, resp.Url)
	c := startRemoteCmd(t, resp.Url, streamOpts{Stdin: true, Stdout: true, Stderr: true})
	c.write("hello\n")
	if !c.waitOutput("out:hello\n", 10*time.Second) {
		t.Fatalf("no answer to the first line on stdout: %q", c.stdout.String())
	}
	c.write("rest of ")
	c.write("the input")
	c.closeStdin() // cat ends at the end of stdin
	code, msg := c.wait(30 * time.Second)
	if code != 5 {
		t.Errorf("exit code %d (%s), want 5", code, msg)
	}
	if got := c.stdout.String(); got != "out:hello\nrest of the input" {
		t.Errorf("stdout %q", got)
	}
	if got := c.stderr.String(); got != "err:hello\n" {
		t.Errorf("stderr %q", got)
	}

	// 8 MB of random output arrives intact (exec output is never dropped).
	if r, err := e.execSync(id, 30, "sh", "-c", "head -c 8000000 /dev/urandom > /tmp/rand"); err != nil || r.ExitCode != 0 {
		t.Fatalf("make /tmp/rand: %v %v", r, err)
	}
	resp, err = e.d.Runtime.Exec(ctxT(t), &runtime.ExecRequest{ContainerId: id, Stdout: true, Stderr: true, Cmd: []string{"cat", "/tmp/rand"}})
	if err != nil {
		t.Fatal(err)
	}
	c = startRemoteCmd(t, resp.Url, streamOpts{Stdout: true, Stderr: true})
	if code, msg := c.wait(60 * time.Second); code != 0 {
		t.Fatalf("cat /tmp/rand: code %d (%s)", code, msg)
	}
	r, err := e.execSync(id, 30, "sha256sum", "/tmp/rand")
	if got := c.stdout.String(); err != nil || len(got) != 8000000 || !strings.HasPrefix(string(r.Stdout), fmt.Sprintf("%x", sha256.Sum256([]byte(got)))) {
		t.Errorf("8 MB through exec: got %d bytes, sha256 %x; in the container %q (%v)", len(got), sha256.Sum256([]byte(got)), r.GetStdout(), err)
	}

	// Success, and stdout only.
	resp, err = e.d.Runtime.Exec(ctxT(t), &runtime.ExecRequest{ContainerId: id, Stdout: true, Cmd: []string{"echo", "plain"}})
	if err != nil {
		t.Fatal(err)
	}
	c = startRemoteCmd(t, resp.Url, streamOpts{Stdout: true})
	if code, msg := c.wait(30 * time.Second); code != 0 || c.stdout.String() != "plain\n" {
		t.Errorf("echo plain: code %d (%s) stdout %q", code, msg, c.stdout.String())
	}
	// A URL is good for one stream only.
	if conn, tcp, _, err := spdyConnect(ctxT(t), resp.Url, nil, "v4.channel.k8s.io"); err == nil {
		conn.Close()
		tcp.Close()
		t.Errorf("a used exec URL was accepted again")
	}
	// Exec refuses what no stream could carry.
	for _, req := range []*runtime.ExecRequest{
		{ContainerId: id, Cmd: []string{"true"}},
		{ContainerId: id, Stdout: true},
		{ContainerId: id, Cmd: []string{"true"}, Tty: true, Stdout: true, Stderr: true},
	} {
		if _, err := e.d.Runtime.Exec(ctxT(t), req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Exec %v: %v, want InvalidArgument", req, err)
		}
	}
}

// TestExecAsContainerUser: execs run as the container's user, which can
// use the stdio crid gives it (pipes and terminal), and its groups.
func TestExecAsContainerUser(t *testing.T) {
	e := newStreamEnv(t, "")
	id := e.pod("user").run("c", []string{"sleep", "3600"}, func(c *runtime.ContainerConfig) {
		c.Linux.SecurityContext.RunAsUser = &runtime.Int64Value{Value: 1000}
		c.Linux.SecurityContext.RunAsGroup = &runtime.Int64Value{Value: 1000}
		c.Linux.SecurityContext.SupplementalGroups = []int64{2000}
	})
	r, err := e.execSync(id, 30, "sh", "-c", "id -u; id -G; echo err >&2")
	if err != nil || string(r.Stdout) != "1000\n1000 2000\n" || string(r.Stderr) != "err\n" {
		t.Errorf("ExecSync as user 1000: %q %q %v", r.GetStdout(), r.GetStderr(), err)
	}
	for _, o := range []streamOpts{{Stdin: true, Stdout: true, Stderr: true}, {Stdin: true, Stdout: true, TTY: true}} {
		resp, err := e.d.Runtime.Exec(ctxT(t), &runtime.ExecRequest{
			ContainerId: id, Stdin: true, Stdout: true, Stderr: o.Stderr, Tty: o.TTY,
			Cmd: []string{"sh", "-c", "read l; echo uid-$(id -u)-$l"},
		})
		if err != nil {
			t.Fatal(err)
		}
		c := startRemoteCmd(t, resp.Url, o)
		c.write("in\n")
		if code, msg := c.wait(30 * time.Second); code != 0 || !strings.Contains(c.stdout.String(), "uid-1000-in") {
			t.Errorf("exec %+v as user 1000: code %d (%s), stdout %q stderr %q", o, code, msg, c.stdout.String(), c.stderr.String())
		}
	}
}

// TestExecAfterDaemonRestart: containers that outlive crid (a clean stop,
// then a crash) still take ExecSync, Exec and Attach from the new crid.
func TestExecAfterDaemonRestart(t *testing.T) {
	e := newStreamEnv(t, "")
	p := e.pod("restart")
	id := p.run("c", []string{"sleep", "3600"}, nil)
	att := p.run("att", []string{"sh", "-c", "while read l; do echo got:$l; done"}, func(c *runtime.ContainerConfig) { c.Stdin = true })
	for _, crash := range []bool{false, true} {
		e.d.Restart(crash)
		if r, err := e.execSync(id, 30, "echo", "still"); err != nil || string(r.Stdout) != "still\n" {
			t.Fatalf("ExecSync after restart (crash %v): %v %v", crash, r, err)
		}
		resp, err := e.d.Runtime.Exec(ctxT(t), &runtime.ExecRequest{ContainerId: id, Stdout: true, Cmd: []string{"echo", "streamed"}})
		if err != nil {
			t.Fatal(err)
		}
		checkStreamURL(t, resp.Url)
		c := startRemoteCmd(t, resp.Url, streamOpts{Stdout: true})
		if code, msg := c.wait(30 * time.Second); code != 0 || c.stdout.String() != "streamed\n" {
			t.Errorf("Exec after restart (crash %v): code %d (%s) stdout %q", crash, code, msg, c.stdout.String())
		}
		aresp, err := e.d.Runtime.Attach(ctxT(t), &runtime.AttachRequest{ContainerId: att, Stdin: true, Stdout: true})
		if err != nil {
			t.Fatal(err)
		}
		a := startRemoteCmd(t, aresp.Url, streamOpts{Stdin: true, Stdout: true})
		if !waitFor(10*time.Second, func() bool { a.write("x\n"); return a.waitOutput("got:x\n", 300*time.Millisecond) }) {
			t.Errorf("Attach after restart (crash %v): %q", crash, a.stdout.String())
		}
		a.disconnect("TCP drop")
	}
}

// TestExecTTYResize runs a shell on a terminal: the sizes the client sends
// reach it, and its exit code comes back.
func TestExecTTYResize(t *testing.T) {
	e := newStreamEnv(t, "")
	id := e.pod("tty").run("c", []string{"sleep", "3600"}, nil)
	resp, err := e.d.Runtime.Exec(ctxT(t), &runtime.ExecRequest{
		ContainerId: id, Stdin: true, Stdout: true, Tty: true, Cmd: []string{"sh"},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := startRemoteCmd(t, resp.Url, streamOpts{Stdin: true, Stdout: true, TTY: true})
	c.write("tty; echo tty-$((6*7))\n")
	if !c.waitOutput("tty-42", 10*time.Second) || !strings.Contains(c.stdout.String(), "/dev/pts/") {
		t.Fatalf("shell on a terminal did not answer: %q", c.stdout.String())
	}
	for _, sz := range [][2]uint16{{100, 40}, {132, 50}} {
		c.resizeTo(sz[0], sz[1])
		want := fmt.Sprintf("%d %d", sz[1], sz[0]) // stty size: rows columns
		// The size travels beside stdin, not in order with it: ask until
		// it has arrived.
		if !waitFor(10*time.Second, func() bool {
			c.write("stty size\n")
			return c.waitOutput(want+"\r\n", 500*time.Millisecond)
		}) {
			t.Fatalf("stty size never printed %q after a resize to %v: %q", want, sz, c.stdout.String())
		}
	}
	c.write("exit 7\n")
	if code, msg := c.wait(30 * time.Second); code != 7 {
		t.Errorf("exit code %d (%s), want 7", code, msg)
	}
}

// TestExecClientDisconnectKillsProcess: a process whose client went away
// does not linger in the container, with or without stdin or a tty, both
// when the client's TCP connection drops (a killed kubectl) and when the
// client closes the SPDY connection (resets its streams, says GOAWAY,
// closes; what client-go does when its context is cancelled).
func TestExecClientDisconnectKillsProcess(t *testing.T) {
	e := newStreamEnv(t, "")
	id := e.pod("disconnect").run("c", []string{"sleep", "3600"}, nil)
	n := 0
	for _, how := range []string{"TCP drop", "SPDY close"} {
		for _, o := range []streamOpts{{Stdout: true}, {Stdin: true, Stdout: true, Stderr: true}, {Stdin: true, Stdout: true, TTY: true}, {Stdin: true}} {
			cmdline := fmt.Sprintf("sleep %d", 1000+n)
			n++
			resp, err := e.d.Runtime.Exec(ctxT(t), &runtime.ExecRequest{
				ContainerId: id, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Tty: o.TTY, Cmd: strings.Fields(cmdline),
			})
			if err != nil {
				t.Fatal(err)
			}
			c := startRemoteCmd(t, resp.Url, o)
			if !waitFor(10*time.Second, func() bool { return e.hasProcess(id, cmdline) }) {
				t.Fatalf("%+v: %q never ran: %q", o, cmdline, e.processes(id))
			}
			c.disconnect(how)
			if !waitFor(10*time.Second, func() bool { return !e.hasProcess(id, cmdline) }) {
				t.Errorf("%s, %+v: %q still runs 10s after its client went away: %q", how, o, cmdline, e.processes(id))
			}
		}
	}
}

// TestAttachTTY attaches to a shell started with stdin and a terminal:
// input reaches it, output comes back, a resize applies, a detach (either
// way a client can go) leaves it running and ends the attach inside crid,
// and its exit ends the last attach.
func TestAttachTTY(t *testing.T) {
	e := newStreamEnv(t, "")
	p := e.pod("attach-tty")
	id := p.run("c", []string{"sh"}, func(c *runtime.ContainerConfig) { c.Stdin, c.Tty = true, true })
	attach := func() *remoteCmd {
		resp, err := e.d.Runtime.Attach(ctxT(t), &runtime.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Tty: true})
		if err != nil {
			t.Fatal(err)
		}
		checkStreamURL(t, resp.Url)
		return startRemoteCmd(t, resp.Url, streamOpts{Stdin: true, Stdout: true, TTY: true})
	}
	sockets := e.shimSockets(id)
	c := attach()
	c.write("echo attached-$((6*7))\n")
	if !c.waitOutput("attached-42", 10*time.Second) {
		t.Fatalf("attached shell did not answer: %q", c.stdout.String())
	}
	c.resizeTo(90, 30)
	if !waitFor(10*time.Second, func() bool { c.write("stty size\n"); return c.waitOutput("30 90\r\n", 500*time.Millisecond) }) {
		t.Fatalf("resize did not reach the attached terminal: %q", c.stdout.String())
	}
	c.disconnect("TCP drop")
	if !waitFor(10*time.Second, func() bool { return e.shimSockets(id) == sockets }) {
		t.Fatalf("10s after detaching, the shim still holds %d sockets (%d before the attach)", e.shimSockets(id), sockets)
	}

	for _, how := range []string{"TCP drop", "SPDY close"} {
		c = attach()
		c.write("echo again-$((7*7))\n")
		if !c.waitOutput("again-49", 10*time.Second) {
			t.Fatalf("attach again: no answer: %q", c.stdout.String())
		}
		if n := e.shimSockets(id); n <= sockets {
			t.Fatalf("the shim holds %d sockets while attached, %d before: the count shows no attach", n, sockets)
		}
		c.disconnect(how)
		// The attach ends inside crid too: its connection to the shim closes.
		if !waitFor(10*time.Second, func() bool { return e.shimSockets(id) == sockets }) {
			t.Errorf("%s: 10s after detaching, the shim still holds %d sockets (%d before the attach)", how, e.shimSockets(id), sockets)
		}
		st, err := e.d.Runtime.ContainerStatus(ctxT(t), &runtime.ContainerStatusRequest{ContainerId: id})
		if err != nil || st.Status.State != runtime.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("%s: after detaching, the container is %v (%v)", how, st.GetStatus().GetState(), err)
		}
	}

	c = attach()
	c.write("exit 3\n")
	c.wait(30 * time.Second)
	if !waitFor(10*time.Second, func() bool {
		st, err := e.d.Runtime.ContainerStatus(ctxT(t), &runtime.ContainerStatusRequest{ContainerId: id})
		return err == nil && st.Status.State == runtime.ContainerState_CONTAINER_EXITED && st.Status.ExitCode == 3
	}) {
		t.Fatalf("the shell's exit 3 typed through attach did not end the container")
	}
}

// TestAttachNoTTY attaches to a container with stdin and no terminal:
// stdin reaches it, stdout and stderr come back apart, and a second
// client attached without stdin sees the output too.
func TestAttachNoTTY(t *testing.T) {
	e := newStreamEnv(t, "")
	p := e.pod("attach")
	script := `echo ready; while read l; do echo "got:$l"; echo "err:$l" >&2; done; echo eof`
	id := p.run("c", []string{"sh", "-c", script}, func(c *runtime.ContainerConfig) { c.Stdin = true })
	if !waitFor(10*time.Second, func() bool { return strings.Contains(p.logText("c"), "ready") }) {
		t.Fatalf("container did not start its loop: %q", p.logText("c"))
	}
	url := func(stdin bool) string {
		resp, err := e.d.Runtime.Attach(ctxT(t), &runtime.AttachRequest{ContainerId: id, Stdin: stdin, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Url
	}
	watcher := startRemoteCmd(t, url(false), streamOpts{Stdout: true, Stderr: true})
	c := startRemoteCmd(t, url(true), streamOpts{Stdin: true, Stdout: true, Stderr: true})
	// Attach carries output from the moment it attaches on: keep sending
	// until the streams are surely wired.
	if !waitFor(10*time.Second, func() bool { c.write("one\n"); return c.waitOutput("got:one\n", 300*time.Millisecond) }) {
		t.Fatalf("stdin did not reach the container or its output did not come back: %q %q", c.stdout.String(), c.stderr.String())
	}
	if !waitFor(5*time.Second, func() bool { return strings.Contains(c.stderr.String(), "err:one\n") }) {
		t.Errorf("stderr: %q", c.stderr.String())
	}
	if strings.Contains(c.stdout.String(), "err:") || strings.Contains(c.stderr.String(), "got:") {
		t.Errorf("streams mixed: stdout %q stderr %q", c.stdout.String(), c.stderr.String())
	}
	c.write("two\n")
	if !c.waitOutput("got:two\n", 10*time.Second) || !watcher.waitOutput("got:two\n", 10*time.Second) {
		t.Errorf("second line: client %q, watcher %q", c.stdout.String(), watcher.stdout.String())
	}
	if !strings.Contains(p.logText("c"), "got:two") {
		t.Errorf("the container's log lacks what attach showed: %q", p.logText("c"))
	}
}

// TestPortForward forwards a host port, over 127.0.0.1, to a busybox httpd
// that listens only on the pod's loopback.
func TestPortForward(t *testing.T) {
	e := newStreamEnv(t, "")
	p := e.pod("pf")
	script := `mkdir -p /www && echo hello-pf > /www/index.html && head -c 1048576 /dev/urandom > /www/big && exec httpd -f -p 127.0.0.1:8080 -h /www`
	id := p.run("web", []string{"sh", "-c", script}, nil)
	if !waitFor(10*time.Second, func() bool {
		r, err := e.execSync(id, 10, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html")
		return err == nil && string(r.Stdout) == "hello-pf\n"
	}) {
		t.Fatalf("httpd in the pod does not answer on its loopback")
	}
	podSt, _ := podStatus(t, e.d, p.id)
	if ip := podSt.GetNetwork().GetIp(); ip != "" {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "8080"), 2*time.Second); err == nil {
			c.Close()
			t.Fatalf("httpd is reachable on the pod IP %s: the test would not show forwarding through the pod's loopback", ip)
		}
	}

	resp, err := e.d.Runtime.PortForward(ctxT(t), &runtime.PortForwardRequest{PodSandboxId: p.id, Port: []int32{8080}})
	if err != nil {
		t.Fatal(err)
	}
	checkStreamURL(t, resp.Url)
	conn, tcp, proto, err := spdyConnect(ctxT(t), resp.Url, nil, "portforward.k8s.io")
	if err != nil || proto != "portforward.k8s.io" {
		t.Fatalf("connect %s: %v (protocol %q)", resp.Url, err, proto)
	}
	defer tcp.Close()
	defer conn.Close()
	local := forwardLocal(t, conn, 8080)
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 30 * time.Second}
	get := func(path string) []byte {
		t.Helper()
		r, err := client.Get("http://" + local + path)
		if err != nil {
			t.Fatalf("GET %s through the forward: %v", path, err)
		}
		defer r.Body.Close()
		body, err := io.ReadAll(r.Body)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", path, r.StatusCode, err)
		}
		return body
	}
	if got := string(get("/index.html")); got != "hello-pf\n" {
		t.Errorf("index.html through the forward = %q", got)
	}
	// A megabyte arrives intact; a second connection on the same SPDY
	// connection works as well.
	big := get("/big")
	r, err := e.execSync(id, 30, "sha256sum", "/www/big")
	if err != nil {
		t.Fatal(err)
	}
	if sum := fmt.Sprintf("%x", sha256.Sum256(big)); len(big) != 1<<20 || !strings.HasPrefix(string(r.Stdout), sum) {
		t.Errorf("big file through the forward: %d bytes, sha256 %s; in the pod %s", len(big), sum, r.Stdout)
	}

	// A port nothing listens on: the error stream says so.
	pc, err := openPortForward(conn, 8081, 1000)
	if err != nil {
		t.Fatal(err)
	}
	_, msg, _ := pc.roundTrip("GET / HTTP/1.0\r\n\r\n", 30*time.Second)
	if !strings.Contains(msg, "8081") {
		t.Errorf("forward to a closed port: error stream %q, want an error naming the port", msg)
	}
	// And the connection still forwards afterwards.
	if got := string(get("/index.html")); got != "hello-pf\n" {
		t.Errorf("after a failed forward: %q", got)
	}
}

// TestPortForwardNotReadyPod: PortForward into a stopped pod fails.
func TestPortForwardNotReadyPod(t *testing.T) {
	e := newStreamEnv(t, "")
	p := e.pod("pf-stopped")
	if _, err := e.d.Runtime.StopPodSandbox(ctxT(t), &runtime.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Fatal(err)
	}
	_, err := e.d.Runtime.PortForward(ctxT(t), &runtime.PortForwardRequest{PodSandboxId: p.id, Port: []int32{80}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("PortForward into a stopped pod: %v, want FailedPrecondition", err)
	}
	_, err = e.d.Runtime.PortForward(ctxT(t), &runtime.PortForwardRequest{PodSandboxId: p.id, Port: []int32{70000}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("PortForward to port 70000: %v, want InvalidArgument", err)
	}
}
