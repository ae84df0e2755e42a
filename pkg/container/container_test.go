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

func TestCappedBuffersShareRoom(t *testing.T) {
	room := 10
	out, errOut := &cappedBuffer{room: &room}, &cappedBuffer{room: &room}
	out.Write([]byte("123456"))
	errOut.Write([]byte("abcdef"))
	if n, _ := out.Write([]byte("xyz")); n != 3 {
		t.Errorf("a full buffer must still accept (and drop) writes: %d", n)
	}
	if string(out.b) != "123456" || string(errOut.b) != "abcd" || room != 0 {
		t.Errorf("out %q err %q room %d", out.b, errOut.b, room)
	}
}
