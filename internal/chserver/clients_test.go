package chserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/internal/teststack"
)

// analystClient is one of the clients analysts query driftwatch's tables
// with, run by a script in testdata/clients with the client's default
// settings (docs/tables.md, "Clients analysts use").
type analystClient struct {
	name string
	// command returns the program and arguments, or why the client is
	// not installed.
	command func(root string) ([]string, []string, error)
	// wantRequest, when set, is a request the client must have sent with
	// its defaults: what the test is a regression test of.
	wantRequest func(seen []clientRequest) error
	// variants are the other settings the script tries, each inserting
	// one row and counting it back.
	variants []string
}

var analystClients = []analystClient{
	{
		name: "clickhouse-connect",
		command: func(root string) ([]string, []string, error) {
			py := filepath.Join(root, ".deps", "clients", "venv", "bin", "python")
			if _, err := os.Stat(py); err != nil {
				return nil, nil, err
			}
			return []string{py, filepath.Join(root, "testdata", "clients", "clickhouse_connect_check.py")}, nil, nil
		},
		variants: []string{"compress=zstd", "compress=gzip", "compress=lz4", "compress=False"},
		// Its default inserts are lz4 frames (refused before issue 14),
		// and it reads enable_http_compression from system.settings (1 in
		// chDB) and then asks for compressed responses ("lz4,zstd,gzip,
		// deflate") with Accept-Encoding only.
		wantRequest: func(seen []clientRequest) error {
			var lz4In, compressedOut bool
			for _, r := range seen {
				lz4In = lz4In || r.ContentEncoding == "lz4" && r.Status == http.StatusOK
				compressedOut = compressedOut || r.ResponseEncoding != "" && r.Status == http.StatusOK
			}
			if !lz4In || !compressedOut {
				return fmt.Errorf("an lz4 request answered 200: %v; a compressed response: %v; want both", lz4In, compressedOut)
			}
			return nil
		},
	},
	{
		name: "@clickhouse/client",
		command: func(root string) ([]string, []string, error) {
			node, err := exec.LookPath("node")
			if err != nil {
				return nil, nil, err
			}
			modules := filepath.Join(root, ".deps", "clients", "node", "node_modules")
			if _, err := os.Stat(filepath.Join(modules, "@clickhouse", "client", "package.json")); err != nil {
				return nil, nil, err
			}
			return []string{node, filepath.Join(root, "testdata", "clients", "clickhouse_js_check.mjs")}, []string{"NODE_PATH=" + modules}, nil
		},
		variants: []string{"gzip request and response"},
	},
	{
		name: "clickhouse-jdbc",
		command: func(root string) ([]string, []string, error) {
			java, err := exec.LookPath("java")
			if err != nil {
				return nil, nil, err
			}
			jars, _ := filepath.Glob(filepath.Join(root, ".deps", "clients", "jdbc", "*.jar"))
			if len(jars) == 0 {
				return nil, nil, fmt.Errorf("no jars in .deps/clients/jdbc")
			}
			return []string{java, "-cp", filepath.Join(root, ".deps", "clients", "jdbc", "*"), filepath.Join(root, "testdata", "clients", "JdbcCheck.java")}, nil, nil
		},
		variants: []string{"decompress=true", "client.use_http_compression=true", "compress=false"},
	},
}

// clientResult is what each script prints.
type clientResult struct {
	Client   string  `json:"client"`
	Inserted int     `json:"inserted"`
	Rows     [][]any `json:"rows"`
	// BoundRows, when the script reports it, is the same select with
	// ClickHouse's {name:Type} where Rows used another binding.
	BoundRows [][]any `json:"bound_rows"`
	ErrorCode *int    `json:"error_code"`
	Error     string  `json:"error"`
	// Variants counts, for each other setting, the one row inserted
	// with it.
	Variants map[string]int `json:"variants"`
}

// clientRequest is what the recording proxy saw of one request.
type clientRequest struct {
	Method, ContentEncoding, AcceptEncoding, ResponseEncoding string
	Params                                                    []string // compression-related URL parameters
	Status                                                    int
}

func (r clientRequest) String() string {
	return fmt.Sprintf("%s %d Content-Encoding=%q Accept-Encoding=%q params=%v -> Content-Encoding=%q",
		r.Method, r.Status, r.ContentEncoding, r.AcceptEncoding, r.Params, r.ResponseEncoding)
}

// recordingProxy passes requests through to ClickHouse unchanged and
// records their compression, so the test shows what each client's
// defaults send.
func recordingProxy(t *testing.T, target *url.URL) (*httptest.Server, func() []clientRequest) {
	t.Helper()
	var mu sync.Mutex
	var seen []clientRequest
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	// Bytes as the client sent and the server answered them: the
	// transport must not add Accept-Encoding nor decode.
	rp.Transport = &http.Transport{DisableCompression: true}
	rp.ModifyResponse = func(res *http.Response) error {
		r := res.Request
		var params []string
		for _, k := range []string{"compress", "decompress", "enable_http_compression", "http_zlib_compression_level"} {
			if v := r.URL.Query().Get(k); v != "" {
				params = append(params, k+"="+v)
			}
		}
		if q := r.URL.Query().Get("query"); q != "" {
			params = append(params, fmt.Sprintf("query=%.40q", q))
		}
		mu.Lock()
		seen = append(seen, clientRequest{
			Method: r.Method, ContentEncoding: r.Header.Get("Content-Encoding"), AcceptEncoding: r.Header.Get("Accept-Encoding"),
			ResponseEncoding: res.Header.Get("Content-Encoding"), Params: params, Status: res.StatusCode,
		})
		mu.Unlock()
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv, func() []clientRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]clientRequest(nil), seen...)
	}
}

// TestAnalystClients runs the clients analysts use, each with its default
// settings, against clickhouse-embedded: create a table, insert rows,
// select with bound parameters, and an error whose ClickHouse code must
// reach the client. A client that is not installed (scripts/deps.sh
// clients) fails the test under CI=true.
func TestAnalystClients(t *testing.T) {
	c := target(t)
	root := teststack.RepoRoot(t)
	user, password := "default", ""
	if c.base.User != nil {
		user = c.base.User.Username()
		password, _ = c.base.User.Password()
	}
	wantRows := [][]any{{1.0, "churn", 0.25}, {3.0, "churn", 0.75}}
	for _, cl := range analystClients {
		t.Run(cl.name, func(t *testing.T) {
			args, extraEnv, err := cl.command(root)
			if err != nil {
				testenv.Unavailable(t, "%s is not installed (%v): run scripts/deps.sh clients", cl.name, err)
				return
			}
			proxy, seen := recordingProxy(t, c.base)
			pu, _ := url.Parse(proxy.URL)
			table := uniqueTable("analyst_" + strings.NewReplacer("@", "", "/", "_", "-", "_").Replace(cl.name))
			t.Cleanup(func() {
				_, _ = c.post(t, url.Values{"query": {"DROP TABLE IF EXISTS " + table}}, nil, nil)
			})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, args[0], args[1:]...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), extraEnv...)
			cmd.Env = append(cmd.Env,
				"CLIENT_CHECK_HOST="+pu.Hostname(), "CLIENT_CHECK_PORT="+pu.Port(),
				"CLIENT_CHECK_USER="+user, "CLIENT_CHECK_PASSWORD="+password,
				"CLIENT_CHECK_DATABASE="+c.database, "CLIENT_CHECK_TABLE="+table)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			for _, r := range seen() {
				t.Logf("%s sent %s", cl.name, r)
			}
			if err != nil {
				t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, tail(stderr.String(), 3000))
			}
			var res clientResult
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("script output is not the JSON object expected: %v\n%s", err, out)
			}
			t.Logf("%s: %+v", res.Client, res)
			if res.Inserted != 3 {
				t.Errorf("inserted %d rows, want 3", res.Inserted)
			}
			if !reflect.DeepEqual(res.Rows, wantRows) {
				t.Errorf("selected %v with model={model:String} 'churn' and score > 0.1, want %v", res.Rows, wantRows)
			}
			if res.BoundRows != nil && !reflect.DeepEqual(res.BoundRows, wantRows) {
				t.Errorf("selected %v with {model:String} 'churn' and {min:Float64} 0.1, want %v", res.BoundRows, wantRows)
			}
			if res.ErrorCode == nil || *res.ErrorCode != 60 {
				t.Errorf("error code %v from a SELECT of a missing table, want 60 (UNKNOWN_TABLE); message %q", res.ErrorCode, res.Error)
			}
			if !strings.Contains(res.Error, "UNKNOWN_TABLE") && !strings.Contains(res.Error, "Unknown table") {
				t.Errorf("error message %q does not say the table is unknown", res.Error)
			}
			for _, v := range cl.variants {
				if n, ok := res.Variants[v]; !ok || n != 1 {
					t.Errorf("with %s: counted %d rows (reported: %v), want the 1 inserted", v, n, ok)
				}
			}
			if cl.wantRequest != nil {
				if err := cl.wantRequest(seen()); err != nil {
					t.Errorf("%s's default requests: %v", cl.name, err)
				}
			}
			// The client's responses were decodable in whatever it asked
			// for: the rows above prove it; say what that was.
			encs := map[string]bool{}
			for _, r := range seen() {
				var params []string
				for _, p := range r.Params {
					if !strings.HasPrefix(p, "query=") {
						params = append(params, p)
					}
				}
				encs[r.ContentEncoding+"/"+r.ResponseEncoding+"/"+strings.Join(params, "&")] = true
			}
			keys := make([]string, 0, len(encs))
			for k := range encs {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			t.Logf("%s request/response encodings and compression parameters: %v", cl.name, keys)
		})
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
