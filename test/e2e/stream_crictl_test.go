//go:build crictl

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// crictlCmd is crictl talking to e's crid, with no config file.
func crictlCmd(t *testing.T, e *streamEnv, args ...string) *exec.Cmd {
	t.Helper()
	return crictlCommand(t, e.d.Socket, args...)
}

// crictlTransports are the streaming transports to drive crictl with.
// crictl's websocket transport offers only v5.channel.k8s.io for exec and
// attach, and SPDY tunnelled in websocket for port-forward, neither of
// which crid's streaming server (k8s.io/cri-streaming) serves yet: set
// CRID_CRICTL_WEBSOCKET=1 to run those cases anyway.
func crictlTransports() []string {
	if os.Getenv("CRID_CRICTL_WEBSOCKET") != "" {
		return []string{"spdy", "websocket"}
	}
	return []string{"spdy"}
}

// startCmd starts cmd; it is killed (by its pid) and reaped when the test
// ends if it still runs. done is closed when it has exited.
func startCmd(t *testing.T, cmd *exec.Cmd) (done chan struct{}, waitErr *error) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done, waitErr = make(chan struct{}), new(error)
	go func() { *waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	})
	return done, waitErr
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// openPty opens a pseudo-terminal pair: the master for the test, the
// slave as a child's controlling terminal.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

func setWinsize(t *testing.T, f *os.File, rows, cols uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
}

// runOnPty starts cmd with the pty's slave as its controlling terminal
// and stdio, and collects what it writes to the terminal.
func runOnPty(t *testing.T, cmd *exec.Cmd, master, slave *os.File) (*syncBuffer, chan struct{}, *error) {
	t.Helper()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	done, waitErr := startCmd(t, cmd)
	slave.Close() // the child holds it now; the master sees EIO when it is gone
	out := &syncBuffer{}
	go io.Copy(out, master)
	return out, done, waitErr
}

// TestCrictlExecInteractiveTTY: `crictl exec -it` on a real terminal: the
// terminal's size, and a later change of it, reach the shell; its exit
// code is crictl's.
func TestCrictlExecInteractiveTTY(t *testing.T) {
	e := newStreamEnv(t, "")
	id := e.pod("crictl-it").run("c", []string{"sleep", "3600"}, nil)
	for _, transport := range crictlTransports() {
		t.Run(transport, func(t *testing.T) {
			master, slave := openPty(t)
			setWinsize(t, slave, 33, 111)
			out, done, waitErr := runOnPty(t, crictlCmd(t, e, "exec", "-it", "-r", transport, id, "sh"), master, slave)
			ask := func(want string) bool {
				return waitFor(15*time.Second, func() bool {
					master.Write([]byte("stty size\r"))
					return waitFor(500*time.Millisecond, func() bool { return strings.Contains(out.String(), want) })
				})
			}
			if !ask("33 111") {
				t.Fatalf("stty size never showed the terminal's 33 111: %q", out.String())
			}
			setWinsize(t, master, 44, 122) // the kernel sends crictl SIGWINCH
			if !ask("44 122") {
				t.Fatalf("stty size never showed the new size 44 122: %q", out.String())
			}
			master.Write([]byte("exit 5\r"))
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("crictl exec -it did not end after exit: %q", out.String())
			}
			// crictl exits 1 and names the command's exit code.
			if *waitErr == nil || !strings.Contains(out.String(), "exit code 5") {
				t.Errorf("crictl exec -it after exit 5: %v, output %q", *waitErr, out.String())
			}
		})
	}
}

// TestCrictlExecSyncAndStream: `crictl exec --sync` (ExecSync) and plain
// `crictl exec -i` (streaming), with separate stdout and stderr, stdin,
// exit codes and the sync timeout.
func TestCrictlExecSyncAndStream(t *testing.T) {
	e := newStreamEnv(t, "")
	id := e.pod("crictl-exec").run("c", []string{"sleep", "3600"}, nil)
	run := func(args ...string) (stdout, stderr string, err error) {
		cmd := crictlCmd(t, e, args...)
		var ob, eb strings.Builder
		cmd.Stdout, cmd.Stderr = &ob, &eb
		err = cmd.Run()
		return ob.String(), eb.String(), err
	}
	// crictl exec --sync prints stdout, then stderr, on its stdout.
	if out, _, err := run("exec", "--sync", id, "sh", "-c", "echo out; echo err >&2"); err != nil || out != "out\n\nerr\n\n" {
		t.Errorf("crictl exec --sync: %v, stdout %q", err, out)
	}
	// With a non-zero exit it fails naming the code and the stderr.
	if _, errOut, err := run("exec", "--sync", id, "sh", "-c", "echo out; echo err >&2; exit 3"); err == nil || !strings.Contains(errOut, "exited with 3: err") {
		t.Errorf("crictl exec --sync of exit 3: %v, stderr %q", err, errOut)
	}
	for _, transport := range crictlTransports() {
		out, errOut, err := run("exec", "-r", transport, id, "sh", "-c", "echo out; echo err >&2; exit 3")
		if err == nil || out != "out\n" || !strings.HasPrefix(errOut, "err\n") || !strings.Contains(errOut, "exit code 3") {
			t.Errorf("crictl exec -r %s of exit 3: %v, stdout %q, stderr %q", transport, err, out, errOut)
		}
	}

	cmd := crictlCmd(t, e, "exec", "-i", id, "sh", "-c", "while read l; do echo got:$l; done; echo eof")
	cmd.Stdin = strings.NewReader("a\nb\n")
	if out, err := cmd.Output(); err != nil || string(out) != "got:a\ngot:b\neof\n" {
		t.Errorf("crictl exec -i with piped stdin: %q %v", out, err)
	}

	cmd = crictlCmd(t, e, "exec", "--sync", "--timeout", "1", id, "sleep", "1020")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(strings.ToLower(string(out)), "deadline") {
		t.Errorf("crictl exec --sync --timeout 1 sleep: %v %q, want a deadline error", err, out)
	}
	if !waitFor(10*time.Second, func() bool { return !e.hasProcess(id, "sleep 1020") }) {
		t.Errorf("the timed-out command still runs: %q", e.processes(id))
	}
}

// TestCrictlAttach: `crictl attach -i` feeds a stdin_once container and
// ends with it when its stdin ends; `crictl attach -it` drives a shell
// started on a terminal.
func TestCrictlAttach(t *testing.T) {
	e := newStreamEnv(t, "")
	p := e.pod("crictl-attach")
	script := "while read l; do echo got:$l; done; echo bye"
	id := p.run("pipe", []string{"sh", "-c", script}, func(c *runtime.ContainerConfig) { c.Stdin, c.StdinOnce = true, true })
	cmd := crictlCmd(t, e, "attach", "-i", id)
	pr, pw := io.Pipe()
	cmd.Stdin = pr
	stdout := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stdout
	done, waitErr := startCmd(t, cmd)
	// What is written before the attach is wired is lost: repeat the
	// first line until its echo shows.
	if !waitFor(15*time.Second, func() bool {
		pw.Write([]byte("first\n"))
		return waitFor(300*time.Millisecond, func() bool { return strings.Contains(stdout.String(), "got:first") })
	}) {
		t.Fatalf("crictl attach -i: no echo of stdin: %q", stdout.String())
	}
	pw.Write([]byte("last\n"))
	pw.Close()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("crictl attach did not end when the stdin_once container's stdin ended: %q", stdout.String())
	}
	if !strings.Contains(stdout.String(), "got:last") || !strings.Contains(stdout.String(), "bye") || *waitErr != nil {
		t.Errorf("crictl attach -i: %v, output %q", *waitErr, stdout.String())
	}

	tty := p.run("tty", []string{"sh"}, func(c *runtime.ContainerConfig) { c.Stdin, c.Tty = true, true })
	master, slave := openPty(t)
	setWinsize(t, slave, 25, 81)
	out, done, waitErr := runOnPty(t, crictlCmd(t, e, "attach", "-it", tty), master, slave)
	if !waitFor(15*time.Second, func() bool {
		master.Write([]byte("stty size\r"))
		return waitFor(500*time.Millisecond, func() bool { return strings.Contains(out.String(), "25 81") })
	}) {
		t.Fatalf("crictl attach -it: stty size never showed 25 81: %q", out.String())
	}
	master.Write([]byte("exit 0\r"))
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("crictl attach -it did not end when the shell exited: %q", out.String())
	}
	if *waitErr != nil {
		t.Errorf("crictl attach -it: %v", *waitErr)
	}
}

// TestCrictlPortForward: `crictl port-forward` to an httpd listening on
// the pod's loopback only, fetched from the host over 127.0.0.1.
func TestCrictlPortForward(t *testing.T) {
	e := newStreamEnv(t, "")
	p := e.pod("crictl-pf")
	script := `mkdir -p /www && echo hello-crictl > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www`
	id := p.run("web", []string{"sh", "-c", script}, nil)
	if !waitFor(10*time.Second, func() bool {
		r, err := e.execSync(id, 10, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html")
		return err == nil && string(r.Stdout) == "hello-crictl\n"
	}) {
		t.Fatalf("httpd in the pod does not answer on its loopback")
	}
	for _, transport := range crictlTransports() {
		t.Run(transport, func(t *testing.T) {
			cmd := crictlCmd(t, e, "port-forward", "-r", transport, p.id, ":8080")
			pr, pw := io.Pipe()
			cmd.Stdout, cmd.Stderr = pw, pw
			done, waitErr := startCmd(t, cmd)
			// "Forwarding from 127.0.0.1:PORT -> 8080"
			addr := make(chan string, 1)
			go func() {
				re := regexp.MustCompile(`Forwarding from (127\.0\.0\.1:\d+) -> 8080`)
				sc := bufio.NewScanner(pr)
				for sc.Scan() {
					if m := re.FindStringSubmatch(sc.Text()); m != nil {
						select {
						case addr <- m[1]:
						default:
						}
					}
				}
			}()
			var local string
			select {
			case local = <-addr:
			case <-done:
				t.Fatalf("crictl port-forward exited: %v", *waitErr)
			case <-time.After(30 * time.Second):
				t.Fatal("crictl port-forward printed no local address")
			}
			client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 30 * time.Second}
			for range 2 {
				resp, err := client.Get("http://" + local + "/index.html")
				if err != nil {
					t.Fatalf("GET through crictl port-forward: %v", err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(body) != "hello-crictl\n" {
					t.Errorf("GET through crictl port-forward: %d %q", resp.StatusCode, body)
				}
			}
			cmd.Process.Kill()
			<-done
			pw.Close()
		})
	}
}
