package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/config"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func start(t *testing.T, name string) (*Server, context.CancelFunc, chan error) {
	t.Helper()
	s, err := New(Options{Name: name, Addr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return s, cancel, done
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	s, cancel, done := start(t, "ingest")
	base := "http://" + s.Addr()

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "not started") {
		t.Errorf("/readyz before SetReady = %d %q, want 503", code, body)
	}
	s.SetReady(true)
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz after SetReady = %d, want 200", code)
	}
	s.AddCheck("clickhouse", func(ctx context.Context) error { return errors.New("connection refused") })
	s.AddCheck("kafka", func(ctx context.Context) error { return nil })
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "clickhouse: connection refused") || strings.Contains(body, "kafka") {
		t.Errorf("/readyz with a failing check = %d %q", code, body)
	}
	s.AddCheck("clickhouse", func(ctx context.Context) error { return nil })
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz after the check recovers = %d", code)
	}
	s.Handle("GET /api/v1/hello", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "hi") }))
	if code, body := get(t, base+"/api/v1/hello"); code != 200 || body != "hi" {
		t.Errorf("mounted handler = %d %q", code, body)
	}
	code, body := get(t, base+"/metrics")
	for _, want := range []string{`driftwatch_service_ready{service="ingest"} 1`, `driftwatch_build_info{`, `go_goroutines`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q (status %d)", want, code)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v after cancel", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestTwoServersInOneProcess(t *testing.T) {
	a, cancelA, doneA := start(t, "a")
	b, cancelB, doneB := start(t, "b")
	defer func() { cancelA(); cancelB(); <-doneA; <-doneB }()
	_, bodyA := get(t, "http://"+a.Addr()+"/metrics")
	_, bodyB := get(t, "http://"+b.Addr()+"/metrics")
	if !strings.Contains(bodyA, `service="a"`) || strings.Contains(bodyA, `service="b"`) || !strings.Contains(bodyB, `service="b"`) {
		t.Error("the two servers share metrics")
	}
}

func TestPortInUseNamesTheAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := New(Options{Name: "x", Addr: l.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Listen()
	if err == nil || !strings.Contains(err.Error(), "listen for HTTP on "+l.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Listen on a taken port: %v", err)
	}
}

type mainConfig struct {
	config.Common `yaml:",inline"`
}

func (c *mainConfig) Validate() error { return c.Common.Validate() }

func TestMain_(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		runErr   error
		wantCode int
		wantOut  string
		wantErr  string
		wantRun  bool
	}{
		{name: "runs", wantCode: 0, wantRun: true},
		{name: "run fails", runErr: errors.New("connect to kafka: refused"), wantCode: 1, wantRun: true, wantErr: "svc: connect to kafka: refused"},
		{name: "check-config prints and does not run", args: []string{"-check-config"}, env: map[string]string{"DRIFTWATCH_CLICKHOUSE_PASSWORD": "pw"},
			wantCode: 0, wantOut: "# svc: configuration is valid (from defaults, environment and flags)\nkafka_brokers:\n    - 127.0.0.1:9092\n"},
		{name: "bad config exits 2", args: []string{"-log-format", "xml"}, wantCode: 2, wantErr: "svc: invalid configuration:\n  log_format: \"xml\" is neither text nor json\n"},
		{name: "help exits 0", args: []string{"-h"}, wantCode: 0, wantErr: "-kafka-brokers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			ran := false
			cfg := &mainConfig{Common: config.DefaultCommon("127.0.0.1:0")}
			code := Main(cfg, MainOptions{Name: "svc", Args: tt.args, Stdout: &out, Stderr: &errb,
				LookupEnv: func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }},
				func(ctx context.Context) error { ran = true; return tt.runErr })
			if code != tt.wantCode || ran != tt.wantRun {
				t.Errorf("code %d ran %v, want %d %v (stderr %q)", code, ran, tt.wantCode, tt.wantRun, errb.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("stdout %q lacks %q", out.String(), tt.wantOut)
			}
			if !strings.Contains(errb.String(), tt.wantErr) {
				t.Errorf("stderr %q lacks %q", errb.String(), tt.wantErr)
			}
			if strings.Contains(out.String()+errb.String(), "pw\n") {
				t.Error("password printed")
			}
		})
	}
}

func TestMainSignals(t *testing.T) {
	var errb bytes.Buffer
	exited := make(chan int, 1)
	cfg := &mainConfig{Common: config.DefaultCommon("127.0.0.1:0")}
	code := Main(cfg, MainOptions{Name: "svc", Stderr: &errb, Stdout: io.Discard, LookupEnv: func(string) (string, bool) { return "", false },
		Signals: []os.Signal{syscall.SIGUSR1}, Exit: func(c int) { exited <- c }},
		func(ctx context.Context) error {
			_ = syscall.Kill(syscall.Getpid(), syscall.SIGUSR1)
			<-ctx.Done() // the first signal cancels the context
			_ = syscall.Kill(syscall.Getpid(), syscall.SIGUSR1)
			select { // the second one exits at once, even though run is still draining
			case c := <-exited:
				if c != 1 {
					t.Errorf("exit code %d", c)
				}
			case <-time.After(10 * time.Second):
				t.Error("second signal did not exit")
			}
			return ctx.Err()
		})
	if code != 0 {
		t.Errorf("code = %d, want 0 for a signalled shutdown", code)
	}
	if !strings.Contains(errb.String(), "received user defined signal 1, shutting down") {
		t.Errorf("stderr: %q", errb.String())
	}
}

// TestRetryAndWaitFor: both retry a failing op until it succeeds; only
// WaitFor bounds an attempt (a dependency check), Retry hands the op the
// caller's context as it is (a training run may take an hour).
func TestRetryAndWaitFor(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name         string
		retry        func(context.Context, *slog.Logger, string, func(context.Context) error) error
		wantDeadline bool
	}{
		{"WaitFor", WaitFor, true},
		{"Retry", Retry, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := tc.retry(t.Context(), log, "op", func(ctx context.Context) error {
				calls++
				if _, ok := ctx.Deadline(); ok != tc.wantDeadline {
					t.Errorf("attempt %d: deadline %v, want %v", calls, ok, tc.wantDeadline)
				}
				if calls < 2 {
					return errors.New("not yet")
				}
				return nil
			})
			if err != nil || calls != 2 {
				t.Errorf("err %v after %d calls, want nil after 2", err, calls)
			}
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Retry(ctx, log, "the op", func(context.Context) error { return errors.New("down") }); err == nil || !strings.Contains(err.Error(), "the op: down") {
		t.Errorf("Retry with a cancelled context: %v, want the op's error named", err)
	}
}

// TestRetryStopsOnPermanent: an error marked Permanent (a Kafka cluster
// refusing the password) ends WaitFor and Retry at the first attempt,
// with the error itself, not after a wait.
func TestRetryStopsOnPermanent(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	refused := errors.New("refused")
	for name, retry := range map[string]func(context.Context, *slog.Logger, string, func(context.Context) error) error{"WaitFor": WaitFor, "Retry": Retry} {
		t.Run(name, func(t *testing.T) {
			calls := 0
			err := retry(t.Context(), log, "connect", func(context.Context) error {
				calls++
				return fmt.Errorf("dial: %w", Permanent(refused))
			})
			if calls != 1 || !errors.Is(err, refused) || err.Error() != "connect: dial: refused" {
				t.Errorf("after %d calls: %v, want 1 call and \"connect: dial: refused\"", calls, err)
			}
		})
	}
}
