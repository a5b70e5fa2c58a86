package chserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftwatch/driftwatch/internal/chdb"
)

// runFake serves f on a free port with opts' timeouts until the test ends
// and returns the address.
func runFake(t *testing.T, f *fakeEngine, mod func(*Options)) (string, *Server) {
	t.Helper()
	addrc := make(chan string, 1)
	opts := Options{Addr: "127.0.0.1:0", User: "default", Engine: f, Registerer: prometheus.NewRegistry(), ShutdownTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnListen: func(a net.Addr) { addrc <- a.String() }}
	mod(&opts)
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-addrc:
		return a, s
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return "", nil
}

// readUntilClosed reads conn until the server closes it and returns what
// it read, or fails when conn is still open after limit (a generous bound
// for a loaded machine, not a measurement).
func readUntilClosed(t *testing.T, conn net.Conn, limit time.Duration) int64 {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(limit)); err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open %s after a 200 ms timeout", limit)
	}
	return n
}

// TestSlowClientsAreDisconnected: with every timeout at 200 ms, a client
// that sends part of its headers (slowloris), one that stops in the middle
// of its body, an idle keep-alive connection, and a client that does not
// read its answer are each disconnected.
func TestSlowClientsAreDisconnected(t *testing.T) {
	const short = 200 * time.Millisecond
	big := strings.Repeat("x", 64<<20) // far more than the sockets buffer
	f := &fakeEngine{answer: func(sql string) (*chdb.Result, error) {
		if strings.Contains(sql, "big") {
			return &chdb.Result{Data: []byte(big)}, nil
		}
		return &chdb.Result{Data: []byte("1\n")}, nil
	}}
	addr, srv := runFake(t, f, func(o *Options) {
		o.ReadHeaderTimeout, o.ReceiveTimeout, o.SendTimeout, o.IdleTimeout = short, short, short, short
	})
	for _, tc := range []struct {
		name, send string
		// answer, when set, is read first: the request was answered and
		// the connection kept alive.
		answer string
	}{
		{name: "partial header", send: "POST / HTTP/1.1\r\nHost: x\r\nX-Slow: "},
		{name: "partial body", send: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nSELECT "},
		{name: "idle keep-alive", send: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nSELECT 1", answer: "\r\n\r\n1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tc.send); err != nil {
				t.Fatal(err)
			}
			if tc.answer != "" {
				buf := make([]byte, 4096)
				_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, err := conn.Read(buf)
				if err != nil || !strings.HasSuffix(string(buf[:n]), tc.answer) {
					t.Fatalf("answer %q, %v; want one ending in %q", buf[:n], err, tc.answer)
				}
			}
			readUntilClosed(t, conn, 5*time.Second)
		})
	}
	t.Run("answer not read", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		q := "SELECT big"
		// Read nothing until the server has given up on the answer: the
		// request is counted once the handler returned.
		served := func() float64 { return testutil.ToFloat64(srv.metrics.requests.WithLabelValues("select", "ok")) }
		before := served()
		if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"+q); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for served() == before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // polls; asserts no duration
		}
		if n := readUntilClosed(t, conn, 5*time.Second); n >= int64(len(big)) {
			t.Errorf("read %d bytes, the whole answer: the server waited for a client that did not read", n)
		}
	})
}
