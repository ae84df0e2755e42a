package stream

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestHangupCancelsRequestContext: once a handler hijacks the connection,
// the client closing it cancels the request's context, and bytes the
// server had already buffered are still read first.
func TestHangupCancelsRequestContext(t *testing.T) {
	got := make(chan string, 1)
	cancelled := make(chan struct{})
	srv := httptest.NewServer(cancelOnHangup(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		go func() { <-r.Context().Done(); close(cancelled) }()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		got <- line
		io.Copy(io.Discard, rw) // until the client hangs up
	})))
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// The request and the first line arrive together: the server's reader
	// has buffered the line when the handler hijacks.
	conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\nhello\n"))
	br := bufio.NewReader(conn)
	if status, _ := br.ReadString('\n'); status != "HTTP/1.1 101 Switching Protocols\r\n" {
		t.Fatalf("status line %q", status)
	}
	select {
	case line := <-got:
		if line != "hello\n" {
			t.Fatalf("server read %q, want the buffered line", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server read nothing")
	}
	select {
	case <-cancelled:
		t.Fatal("context cancelled while the client is still there")
	case <-time.After(100 * time.Millisecond):
	}
	conn.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the client hung up but the request context was not cancelled")
	}
}
