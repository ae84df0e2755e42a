package container

import (
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestStopSignal(t *testing.T) {
	for _, tc := range []struct {
		cri   runtime.Signal
		image string
		want  int
		bad   bool
	}{
		{runtime.Signal_SIGNAL_RUNTIME_DEFAULT, "", 15, false},
		{runtime.Signal_SIGNAL_RUNTIME_DEFAULT, "SIGINT", 2, false},
		{runtime.Signal_SIGNAL_RUNTIME_DEFAULT, "quit", 3, false},
		{runtime.Signal_SIGNAL_RUNTIME_DEFAULT, "9", 9, false},
		{runtime.Signal_SIGNAL_SIGUSR1, "SIGINT", 10, false},
		{runtime.Signal_SIGNAL_RUNTIME_DEFAULT, "SIGNOPE", 0, true},
		{runtime.Signal_SIGNAL_RUNTIME_DEFAULT, "99", 0, true},
	} {
		got, err := stopSignal(tc.cri, tc.image)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("stopSignal(%s, %q) = %d, %v; want %d (error %v)", tc.cri, tc.image, got, err, tc.want, tc.bad)
		}
	}
}

func TestContainerLogPath(t *testing.T) {
	for _, tc := range []struct {
		dir, rel, want string
		bad            bool
	}{
		{"/var/log/pods/x", "c/0.log", "/var/log/pods/x/c/0.log", false},
		{"", "c/0.log", "", false},
		{"/var/log/pods/x", "", "", false},
		{"/var/log/pods/x", "../../etc/passwd", "", true},
		{"/var/log/pods/x", "/etc/passwd", "", true},
		{"relative", "c.log", "", true},
	} {
		got, err := containerLogPath(tc.dir, tc.rel)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("containerLogPath(%q, %q) = %q, %v", tc.dir, tc.rel, got, err)
		}
	}
}

func TestFitOutput(t *testing.T) {
	b := func(n int) []byte { return make([]byte, n) }
	for _, tc := range []struct{ out, err, max, wantOut, wantErr int }{
		{3, 4, 10, 3, 4},
		{20, 2, 10, 8, 2},  // a short stderr survives a flood on stdout
		{2, 20, 10, 2, 8},  // and the other way round
		{20, 20, 10, 5, 5}, // both too long: half each
	} {
		o, e := fitOutput(b(tc.out), b(tc.err), tc.max)
		if len(o) != tc.wantOut || len(e) != tc.wantErr {
			t.Errorf("fitOutput(%d, %d, %d) = %d, %d; want %d, %d", tc.out, tc.err, tc.max, len(o), len(e), tc.wantOut, tc.wantErr)
		}
	}
	c := &cappedBuffer{max: 4}
	if n, _ := c.Write([]byte("123456")); n != 6 || string(c.b) != "1234" {
		t.Errorf("capped buffer kept %q (wrote %d)", c.b, n)
	}
}
