//go:build crictl

// Opt-in: crictl is built outside this repository, so these tests run only
// with `go test -tags crictl ./test/e2e/` and CRICTL (or crictl on PATH).
package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crid-dev/crid/test/framework"
)

// crictlBin is $CRICTL, else crictl on PATH.
func crictlBin(t *testing.T) string {
	if p := os.Getenv("CRICTL"); p != "" {
		return p
	}
	p, err := exec.LookPath("crictl")
	if err != nil {
		t.Fatal("the crictl tests need crictl: set CRICTL or put it on PATH")
	}
	return p
}

// crictlCommand is crictl talking to the crid on socket, with no config file.
func crictlCommand(t *testing.T, socket string, args ...string) *exec.Cmd {
	t.Helper()
	full := append([]string{"--runtime-endpoint", "unix://" + socket, "--image-endpoint", "unix://" + socket, "--timeout", "60s"}, args...)
	cmd := exec.Command(crictlBin(t), full...)
	cmd.Env = append(os.Environ(), "CRI_CONFIG_FILE=/dev/null")
	return cmd
}

// crictlRunner runs crictl against the crid on socket and returns its
// stdout, failing the test (with crictl's stderr) if it fails.
func crictlRunner(t *testing.T, socket string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		out, err := crictlCommand(t, socket, args...).Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("crictl %v: %v\n%s%s", args, err, out, stderr)
		}
		return strings.TrimSpace(string(out))
	}
}

// TestCrictlPodLifecycle drives crid with crictl, as an operator would:
// runp, pods (with filters), inspectp, stopp, rmp.
func TestCrictlPodLifecycle(t *testing.T) {
	bin := crictlBin(t)
	n := framework.NewNetwork(t, "")
	d := framework.Start(t, framework.Options{CNIConfDir: n.ConfDir})
	cfgPath := filepath.Join(t.TempDir(), "pod.json")
	cfgJSON := `{"metadata":{"name":"cli","namespace":"e2e","uid":"uid-cli","attempt":0},
 "hostname":"cli","labels":{"app":"cli"},"log_directory":"/tmp",
 "linux":{"security_context":{"namespace_options":{"pid":1}}}}`
	if err := os.WriteFile(cfgPath, []byte(cfgJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	crictl := crictlRunner(t, d.Socket)
	id := crictl("runp", cfgPath)
	t.Cleanup(func() { exec.Command(bin, "--runtime-endpoint", "unix://"+d.Socket, "rmp", "-f", id).Run() })
	if len(id) != 64 {
		t.Fatalf("runp printed %q, want a sandbox id", id)
	}

	for _, filter := range [][]string{
		{"--label", "app=cli"}, {"--name", "cl."}, {"--namespace", "e2e"}, {"--state", "ready"}, {"--id", id[:12]},
	} {
		if got := crictl(append([]string{"pods", "-q", "--no-trunc"}, filter...)...); got != id {
			t.Errorf("crictl pods %v = %q, want %s", filter, got, id)
		}
	}
	for _, filter := range [][]string{{"--label", "app=other"}, {"--state", "notready"}, {"--name", "nomatch"}} {
		if got := crictl(append([]string{"pods", "-q"}, filter...)...); got != "" {
			t.Errorf("crictl pods %v = %q, want nothing", filter, got)
		}
	}

	var inspect struct {
		Status struct {
			ID      string `json:"id"`
			State   string `json:"state"`
			Network struct {
				IP string `json:"ip"`
			} `json:"network"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"status"`
		Info struct {
			Pid       int    `json:"pid"`
			NetnsPath string `json:"netnsPath"`
		} `json:"info"`
	}
	out := crictl("inspectp", id[:12])
	if err := json.Unmarshal([]byte(out), &inspect); err != nil {
		t.Fatalf("inspectp output: %v\n%s", err, out)
	}
	s := inspect.Status
	if s.ID != id || s.State != "SANDBOX_READY" || s.Network.IP == "" || s.Metadata.Name != "cli" ||
		inspect.Info.Pid == 0 || inspect.Info.NetnsPath == "" {
		t.Fatalf("inspectp = %+v", inspect)
	}

	crictl("stopp", id)
	if got := crictl("pods", "-q", "--no-trunc", "--state", "notready"); got != id {
		t.Errorf("after stopp, not ready pods = %q", got)
	}
	crictl("rmp", id)
	if got := crictl("pods", "-q"); got != "" {
		t.Errorf("after rmp, pods = %q", got)
	}
	assertNoPodLeftovers(t, d, n, inspect.Info.Pid)
}
