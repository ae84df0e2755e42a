package shim

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Streaming ops: after the JSON response, the connection carries frames
// (1 byte type, 4 bytes big-endian length, payload) both ways.
const (
	OpExec   = "exec"
	OpAttach = "attach"
)

// Frame types.
const (
	frameStdin      byte = 0 // crid → shim
	frameStdout     byte = 1 // shim → crid
	frameStderr     byte = 2 // shim → crid
	frameResize     byte = 3 // crid → shim: width, height as two uint16
	frameCloseStdin byte = 4 // crid → shim
	frameExit       byte = 5 // shim → crid: the Exit as JSON; last frame
)

// maxFrame bounds a frame's payload (a corrupt length must not allocate).
const maxFrame = 1 << 20

// ExecRequest is one process to run in the container.
type ExecRequest struct {
	Args  []string `json:"args"`
	Tty   bool     `json:"tty,omitempty"`
	Stdin bool     `json:"stdin,omitempty"`
}

// AttachRequest says which of the container's streams a client wants.
type AttachRequest struct {
	Stdin  bool `json:"stdin,omitempty"`
	Stdout bool `json:"stdout,omitempty"`
	Stderr bool `json:"stderr,omitempty"`
}

// Size is a terminal size.
type Size struct{ Width, Height uint16 }

// StreamIO is the caller's side of an exec or attach. Nil readers and
// writers are not wired. Stdout receives the terminal's output with a tty.
type StreamIO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Resize         <-chan Size
}

// frameWriter serializes frames on a connection.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (f *frameWriter) write(t byte, p []byte) error {
	var hdr [5]byte
	hdr[0] = t
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := f.w.Write(p)
	return err
}

// chunked writes p as frames of type t, each at most maxFrame long.
func (f *frameWriter) chunked(t byte, p []byte) error {
	for len(p) > 0 {
		n := min(len(p), maxFrame)
		if err := f.write(t, p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func readFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes is too large", n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return hdr[0], buf, nil
}

// Stream runs an exec or attach request and pumps its streams until the
// process (exec) or container (attach) exits, or ctx ends: then the
// connection is closed, which makes the shim kill an exec'd process.
// It returns the exit; a nil Exit with a nil error means the attach ended
// without one (the client went away).
func Stream(ctx context.Context, bundle string, req *Request, sio StreamIO) (*Exit, error) {
	conn, err := dial(ctx, bundle)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("shim %s: send: %w", req.Op, err)
	}
	dec := json.NewDecoder(conn)
	var resp Response
	if err := dec.Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("shim %s: %w (%v)", req.Op, ErrUnreachable, err)
	}
	if resp.Error != "" {
		if resp.Code == CodeNotRunning {
			return nil, fmt.Errorf("%s: %w", resp.Error, ErrNotRunning)
		}
		return nil, errors.New(resp.Error)
	}
	fw := &frameWriter{w: conn}
	go pumpInput(ctx, fw, sio)
	r := afterJSON(dec, conn)
	buf := make([]byte, 32*1024)
	for {
		t, p, err := readFrame(r, buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if req.Op == OpAttach && errors.Is(err, io.EOF) {
				return nil, nil
			}
			return nil, fmt.Errorf("shim %s stream: %w", req.Op, err)
		}
		switch t {
		case frameStdout:
			if sio.Stdout != nil {
				sio.Stdout.Write(p)
			}
		case frameStderr:
			if sio.Stderr != nil {
				sio.Stderr.Write(p)
			}
		case frameExit:
			var e Exit
			if err := json.Unmarshal(p, &e); err != nil {
				return nil, fmt.Errorf("shim %s exit: %w", req.Op, err)
			}
			return &e, nil
		}
	}
}

// pumpInput sends stdin (then its end) and terminal resizes.
func pumpInput(ctx context.Context, fw *frameWriter, sio StreamIO) {
	if sio.Resize != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case sz, ok := <-sio.Resize:
					if !ok {
						return
					}
					var p [4]byte
					binary.BigEndian.PutUint16(p[:2], sz.Width)
					binary.BigEndian.PutUint16(p[2:], sz.Height)
					if fw.write(frameResize, p[:]) != nil {
						return
					}
				}
			}
		}()
	}
	if sio.Stdin == nil {
		return
	}
	buf := make([]byte, 32*1024)
	for {
		n, err := sio.Stdin.Read(buf)
		if n > 0 {
			if fw.write(frameStdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			fw.write(frameCloseStdin, nil)
			return
		}
	}
}

// afterJSON is the rest of a connection after a JSON message read by dec:
// what dec buffered, then the connection, less the newline json.Encoder
// ends each message with.
func afterJSON(dec *json.Decoder, conn io.Reader) io.Reader {
	br := bufio.NewReader(io.MultiReader(dec.Buffered(), conn))
	if b, err := br.Peek(1); err == nil && b[0] == '\n' {
		br.Discard(1)
	}
	return br
}
