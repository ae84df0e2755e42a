package shim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func TestLogWriterFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := OpenLog(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	w.now = func() time.Time { return at }
	long := strings.Repeat("a", MaxLogLine+10)
	in := "hello\r\nworld\n\n" + long + "\nlast"
	if err := w.Copy(StreamStderr, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	ts := "2026-11-23T09:00:00.123456789Z"
	want := []string{
		ts + " stderr F hello",
		ts + " stderr F world",
		ts + " stderr F ",
		ts + " stderr P " + long[:MaxLogLine],
		ts + " stderr F " + long[MaxLogLine:],
		ts + " stderr F last",
	}
	got := readLines(t, path)
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %.80q, want %.80q", i, got[i], want[i])
		}
	}
}

func TestLogWriterReopenAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	w, err := OpenLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Copy(StreamStdout, strings.NewReader("one\n"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	w.Copy(StreamStdout, strings.NewReader("two\n"))
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	w.Copy(StreamStdout, strings.NewReader("three\n"))
	old, cur := readLines(t, path+".1"), readLines(t, path)
	if len(old) != 2 || !strings.HasSuffix(old[1], " stdout F two") {
		t.Errorf("rotated file: %q", old)
	}
	if len(cur) != 1 || !strings.HasSuffix(cur[0], " stdout F three") {
		t.Errorf("reopened file: %q", cur)
	}
}

func TestLogWriterDiscardsWithoutPath(t *testing.T) {
	w, err := OpenLog("")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Copy(StreamStdout, strings.NewReader("x\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
}
