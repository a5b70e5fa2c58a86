package chserver_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/testenv"
)

// buildServer compiles services/clickhouse-embedded into a temp dir.
func buildServer(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "clickhouse-embedded")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/driftwatch/driftwatch/services/clickhouse-embedded")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build clickhouse-embedded: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a free address in 18100-18199, the range kept for
// these tests' own servers.
func freeAddr(t testing.TB) string {
	t.Helper()
	for port := 18100; port < 18200; port++ {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr
	}
	t.Fatal("no free port in 18100-18199")
	return ""
}

// startServer starts bin and waits until it answers /ping.
func startServer(t testing.TB, bin string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	return startServerIn(t, "", bin, args...)
}

// startServerIn is startServer with the working directory dir.
func startServerIn(t testing.TB, dir, bin string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	addr := args[indexOf(args, "-http")+1]
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get("http://" + addr + "/ping"); err == nil {
			res.Body.Close()
			return cmd, &out
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("server on %s did not answer /ping within 60s; output:\n%s", addr, out.String())
	return nil, nil
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func stopServer(t testing.TB, cmd *exec.Cmd, out *bytes.Buffer) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("server exited with %v after SIGTERM; output:\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("server did not stop within 60s of SIGTERM")
	}
}

func query(t *testing.T, addr, sql string, body io.Reader) string {
	t.Helper()
	res, err := http.Post("http://"+addr+"/?query="+url.QueryEscape(sql), "text/plain", body)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("%s: status %d: %s", sql, res.StatusCode, b)
	}
	return string(b)
}

// TestRestartKeepsData writes rows, stops the server with SIGTERM, starts
// it again on the same -path and reads the rows back.
func TestRestartKeepsData(t *testing.T) {
	lib := testenv.Env(t, "CHDB_LIB_PATH", "path of libchdb.so (run `make deps`)")
	bin := buildServer(t)
	dataDir := t.TempDir()
	addr := freeAddr(t)
	args := []string{"-http", addr, "-path", dataDir, "-lib", lib}

	cmd, out := startServer(t, bin, args...)
	query(t, addr, "CREATE TABLE kept (i UInt32, s String) ENGINE = MergeTree ORDER BY i", nil)
	query(t, addr, "INSERT INTO kept FORMAT CSV", strings.NewReader("1,one\n2,two\n3,three\n"))
	stopServer(t, cmd, out)

	cmd, out = startServer(t, bin, args...)
	got := query(t, addr, "SELECT i, s FROM kept ORDER BY i", nil)
	stopServer(t, cmd, out)
	if want := "1\tone\n2\ttwo\n3\tthree\n"; got != want {
		t.Fatalf("after restart read %q, want %q", got, want)
	}
}

// TestMissingLibrary checks that a missing libchdb is a clean failure that
// tells the user what to do.
func TestMissingLibrary(t *testing.T) {
	bin := buildServer(t)
	missing := filepath.Join(t.TempDir(), "no", "libchdb.so")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-http", freeAddr(t), "-path", t.TempDir(), "-lib", missing)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("server started without libchdb; output:\n%s", out)
	}
	msg := string(out)
	for _, want := range []string{"make deps", missing, "CHDB_LIB_PATH"} {
		if !strings.Contains(msg, want) {
			t.Errorf("output does not mention %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "panic") {
		t.Errorf("output shows a panic:\n%s", msg)
	}
}

// TestPortInUse checks that a taken listen address is reported by name.
func TestPortInUse(t *testing.T) {
	bin := buildServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	out, err := exec.Command(bin, "-http", addr, "-path", t.TempDir(), "-lib", "/nonexistent/libchdb.so").CombinedOutput()
	if err == nil || !strings.Contains(string(out), addr) {
		t.Fatalf("want a failure naming %s, got %v:\n%s", addr, err, out)
	}
}
