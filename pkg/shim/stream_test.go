package shim

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

func TestFramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	fw := &frameWriter{w: &buf}
	big := bytes.Repeat([]byte("x"), maxFrame+5)
	fw.write(frameStdout, []byte("hello"))
	fw.write(frameCloseStdin, nil)
	fw.chunked(frameStderr, big)
	var got []string
	var total int
	for {
		typ, p, err := readFrame(&buf, nil)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if typ == frameStderr {
			total += len(p)
		}
		got = append(got, string(rune('0'+typ)))
	}
	if strings.Join(got, "") != "1422" || total != len(big) {
		t.Errorf("frames %v, stderr bytes %d", got, total)
	}
}

func TestReadFrameRejectsHugeLength(t *testing.T) {
	hdr := []byte{frameStdout, 0xff, 0xff, 0xff, 0xff}
	if _, _, err := readFrame(bytes.NewReader(hdr), nil); err == nil {
		t.Fatal("a 4 GiB frame length must be refused")
	}
}

// The JSON message's trailing newline must not be taken for a frame header.
func TestAfterJSONSkipsNewline(t *testing.T) {
	var buf bytes.Buffer
	json.NewEncoder(&buf).Encode(&Response{Pid: 7})
	fw := &frameWriter{w: &buf}
	fw.write(frameExit, []byte(`{"exitCode":3}`))
	dec := json.NewDecoder(&buf)
	var resp Response
	if err := dec.Decode(&resp); err != nil || resp.Pid != 7 {
		t.Fatalf("response %+v, %v", resp, err)
	}
	typ, p, err := readFrame(afterJSON(dec, &buf), nil)
	if err != nil || typ != frameExit || string(p) != `{"exitCode":3}` {
		t.Fatalf("frame %d %q %v", typ, p, err)
	}
}

func TestExitReason(t *testing.T) {
	for _, tc := range []struct {
		e    Exit
		want string
	}{
		{Exit{Code: 0}, "Completed"},
		{Exit{Code: 1}, "Error"},
		{Exit{Code: 137, Signal: 9}, "Error"},
		{Exit{Code: 137, Signal: 9, OOMKilled: true}, "OOMKilled"},
	} {
		if got := tc.e.Reason(); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.e, got, tc.want)
		}
	}
}
