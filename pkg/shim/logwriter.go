package shim

import (
	"bufio"
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// MaxLogLine is the longest log line written as one CRI record; longer
// lines are split into partial ("P") records, as kubelet expects.
const MaxLogLine = 16 * 1024

// CRI log stream names and tags (`<RFC3339Nano> <stream> <P|F> <text>`).
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	tagPartial   = "P"
	tagFull      = "F"
)

// LogWriter writes container output in the CRI log format to a file that
// can be reopened after rotation. Records are written whole, one Write
// each, so stdout and stderr never interleave within a record.
type LogWriter struct {
	mu   sync.Mutex
	path string
	f    *os.File // nil: output is discarded (no log path)
	now  func() time.Time
	buf  []byte
}

// OpenLog opens (creating, appending) the log at path; "" discards output.
func OpenLog(path string) (*LogWriter, error) {
	w := &LogWriter{path: path, now: time.Now}
	if path == "" {
		return w, nil
	}
	f, err := openLogFile(path)
	if err != nil {
		return nil, err
	}
	w.f = f
	return w, nil
}

func openLogFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

// Reopen closes the log and opens its path again: after a rotation
// (rename) new output goes to a new file at the original path.
func (w *LogWriter) Reopen() error {
	if w.path == "" {
		return nil
	}
	f, err := openLogFile(w.path)
	if err != nil {
		return err
	}
	w.mu.Lock()
	old := w.f
	w.f = f
	w.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Close closes the log file.
func (w *LogWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// record writes one CRI log record.
func (w *LogWriter) record(stream, tag string, text []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return
	}
	b := w.buf[:0]
	b = w.now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ')
	b = append(b, tag...)
	b = append(b, ' ')
	b = append(b, text...)
	b = append(b, '\n')
	w.buf = b
	// A full disk loses output, as with every runtime; the container must
	// not block on its log.
	_, _ = w.f.Write(b)
}

// Copy reads r until EOF and writes each line as a record of stream,
// splitting lines longer than MaxLogLine into partial records. A final
// line without a newline is written as a full record.
func (w *LogWriter) Copy(stream string, r io.Reader) error {
	br := bufio.NewReaderSize(r, MaxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			line = line[:len(line)-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			w.record(stream, tagFull, line)
		case errors.Is(err, bufio.ErrBufferFull):
			w.record(stream, tagPartial, line)
		default:
			if len(line) > 0 {
				w.record(stream, tagFull, line)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return err
		}
	}
}
