package stream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
)

// cancelOnHangup gives each streaming request a context that ends when its
// client goes away. The streaming library hijacks the connection, after
// which the request's own context never ends; here the hijacked connection
// is wrapped so that a failed read (the client closed or dropped it) or its
// close cancels the context the library passes on to exec, attach and
// port-forward, which then kill what they started.
func cancelOnHangup(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		next.ServeHTTP(&hangupWriter{ResponseWriter: w, cancel: cancel}, r.WithContext(ctx))
	})
}

type hangupWriter struct {
	http.ResponseWriter
	cancel context.CancelFunc
}

// Hijack returns the connection wrapped, and a buffered reader and writer
// over the wrapped connection (keeping what was already buffered).
func (w *hangupWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("streaming: the connection cannot be hijacked")
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	wrapped := &hangupConn{Conn: conn, cancel: w.cancel}
	var in io.Reader = wrapped
	if n := rw.Reader.Buffered(); n > 0 {
		buffered, _ := rw.Reader.Peek(n)
		in = io.MultiReader(bytes.NewReader(append([]byte(nil), buffered...)), wrapped)
	}
	return wrapped, bufio.NewReadWriter(bufio.NewReader(in), bufio.NewWriter(wrapped)), nil
}

// Flush keeps the writer a Flusher (the websocket upgrade needs none,
// but SPDY's does before hijacking).
func (w *hangupWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type hangupConn struct {
	net.Conn
	cancel context.CancelFunc
	once   sync.Once
}

func (c *hangupConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.once.Do(c.cancel)
	}
	return n, err
}

func (c *hangupConn) Close() error {
	c.once.Do(c.cancel)
	return c.Conn.Close()
}
