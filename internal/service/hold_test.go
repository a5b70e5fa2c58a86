package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/testenv"
)

// closedWithin reports whether the server closes conn within limit,
// discarding whatever it answers first; limit is a generous bound for a
// loaded machine, not a measurement.
func closedWithin(t *testing.T, conn net.Conn, limit time.Duration) bool {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(limit)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true // EOF or a reset: the server closed it
}

// TestSlowClientsAreDisconnected: a client that sends part of its headers
// and then nothing (slowloris), one that sends part of a body, and an idle
// keep-alive connection are each closed by the server once its timeout
// passes (200 ms here; 10 s, 30 s and 120 s by default).
func TestSlowClientsAreDisconnected(t *testing.T) {
	short := 200 * time.Millisecond
	s, err := New(Options{Name: "slow", Addr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second,
		HTTP: config.HTTP{HTTPReadHeaderTimeout: short, HTTPReadTimeout: short, HTTPWriteTimeout: time.Minute, HTTPIdleTimeout: short}})
	if err != nil {
		t.Fatal(err)
	}
	s.Handle("POST /echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = w.Write(b)
	}))
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	for _, tc := range []struct {
		name, send string
		// answer, when set, is read first: the request was whole and
		// answered, and the connection is kept alive.
		answer string
	}{
		{name: "partial header", send: "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "},
		{name: "partial body", send: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten.."},
		{name: "idle keep-alive", send: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", answer: "ok\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tc.send); err != nil {
				t.Fatal(err)
			}
			if tc.answer != "" {
				buf := make([]byte, 512)
				_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, err := conn.Read(buf)
				if err != nil || !strings.HasSuffix(string(buf[:n]), tc.answer) {
					t.Fatalf("answer %q, %v; want one ending in %q", buf[:n], err, tc.answer)
				}
			}
			if !closedWithin(t, conn, 5*time.Second) {
				t.Errorf("connection still open 5 s after a %s timeout of %s", tc.name, short)
			}
		})
	}
}

// TestDefaultTimeouts: a server built with no timeouts has every one of
// config.DefaultHTTP's, which are finite.
func TestDefaultTimeouts(t *testing.T) {
	s, err := New(Options{Name: "d", Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.opts.HTTP, config.DefaultHTTP(); got != want {
		t.Errorf("timeouts %+v, want %+v", got, want)
	}
	if d := config.DefaultHTTP(); !(d.HTTPReadHeaderTimeout > 0 && d.HTTPReadTimeout > 0 && d.HTTPWriteTimeout > 0 && d.HTTPIdleTimeout > 0) {
		t.Errorf("a default timeout is not positive: %+v", d)
	}
}

// readyzChecks reads driftwatch_readyz_checks_total per check (summed over
// outcomes) from /metrics.
func readyzChecks(t *testing.T, base string) map[string]int {
	t.Helper()
	_, body := get(t, base+"/metrics")
	out := map[string]int{}
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "driftwatch_readyz_checks_total{") {
			continue
		}
		var n float64
		i := strings.LastIndexByte(line, ' ')
		if _, err := fmt.Sscan(line[i+1:], &n); err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		for _, c := range []string{"clickhouse", "kafka"} {
			if strings.Contains(line, `check="`+c+`"`) {
				out[c] += int(n)
			}
		}
	}
	return out
}

// TestReadyzProbesShareOneCheck: 50 concurrent /readyz probes within the
// cache's second cost one ClickHouse ping and one Kafka dial (the checks
// service.Run adds, against the real ClickHouse and Kafka), and all 50 are
// answered 200; once the second has passed the next probe checks again.
// The clock is the test's, so nothing depends on how fast probes run.
func TestReadyzProbesShareOneCheck(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	url := testenv.ClickHouseURL(t)
	ctx := context.Background()
	conn, err := chclient.Open(ctx, chclient.Config{URL: url}, false)
	if err != nil {
		t.Fatalf("open %s: %v", chclient.Redact(url), err)
	}
	defer conn.Close()

	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := New(Options{Name: "probed", Addr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	AddDependencyChecks(s, conn, kafkaio.Options{Brokers: brokers})
	s.SetReady(true)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	defer func() { cancel(); <-done }()
	base := "http://" + s.Addr()

	var wg sync.WaitGroup
	var notReady atomic.Int32
	start := make(chan struct{})
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := http.Get(base + "/readyz")
			if err != nil {
				t.Errorf("GET /readyz: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				notReady.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := notReady.Load(); n != 0 {
		t.Errorf("%d of 50 probes not ready against a running ClickHouse and Kafka", n)
	}
	if got := readyzChecks(t, base); got["clickhouse"] != 1 || got["kafka"] != 1 {
		t.Errorf("50 probes within a second ran checks %v, want one ClickHouse ping and one Kafka dial", got)
	}

	mu.Lock()
	now = now.Add(1100 * time.Millisecond)
	mu.Unlock()
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the cache expired = %d %q", code, body)
	}
	if got := readyzChecks(t, base); got["clickhouse"] != 2 || got["kafka"] != 2 {
		t.Errorf("a probe after the second ran checks %v in all, want 2 of each", got)
	}
}

// TestReadyzSharedRunOutlivesAProbe: a probe that gives up while the
// checks run does not fail the run the other probes wait for, and a
// waiting probe gets the run's result, not a run of its own.
func TestReadyzSharedRunOutlivesAProbe(t *testing.T) {
	s, err := New(Options{Name: "shared", Addr: "127.0.0.1:0", ReadyCacheTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var runs atomic.Int32
	s.AddCheck("slow", func(ctx context.Context) error {
		runs.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	s.SetReady(true)
	first, cancelFirst := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() { firstErr <- s.Ready(first) }()
	for runs.Load() == 0 {
		time.Sleep(time.Millisecond) // until the first probe's run has begun
	}
	second := make(chan error, 1)
	go func() { second <- s.Ready(context.Background()) }()
	cancelFirst()
	close(release)
	if err := <-firstErr; err != nil {
		t.Errorf("the first probe's run failed when it gave up: %v", err)
	}
	if err := <-second; err != nil {
		t.Errorf("the waiting probe: %v", err)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("checks ran %d times, want 1", n)
	}
}
