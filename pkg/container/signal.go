package container

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// stopSignal is the signal that stops the container first: the CRI
// config's stop_signal, else the image's STOPSIGNAL, else SIGTERM.
func stopSignal(cri runtime.Signal, image string) (int, error) {
	if cri != runtime.Signal_SIGNAL_RUNTIME_DEFAULT {
		name := strings.TrimPrefix(cri.String(), "SIGNAL_")
		if n := unix.SignalNum(name); n != 0 {
			return int(n), nil
		}
		return 0, fmt.Errorf("stop_signal %s is not a signal of this host: %w", cri, errdefs.ErrInvalidArgument)
	}
	if image == "" {
		return int(unix.SIGTERM), nil
	}
	if n, err := strconv.Atoi(image); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("image stop signal %d is out of range: %w", n, errdefs.ErrInvalidArgument)
		}
		return n, nil
	}
	name := strings.ToUpper(image)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if n := unix.SignalNum(name); n != 0 {
		return int(n), nil
	}
	return 0, fmt.Errorf("image stop signal %q is not a signal: %w", image, errdefs.ErrInvalidArgument)
}
