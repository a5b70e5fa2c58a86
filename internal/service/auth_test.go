package service

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftwatch/driftwatch/internal/config"
)

const (
	readToken  = "read-token-0123456789abcdef"
	writeToken = "write-token-0123456789abcdef"
)

func tokensFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens")
	body := "# API tokens of the test\n\n" + readToken + " read\n  " + writeToken + "   write  \n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startAuth serves an API route that answers its method, behind a.
func startAuth(t *testing.T, a config.APIAuth) (string, *Server) {
	t.Helper()
	s, err := New(Options{Name: "authtest", Addr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second, Auth: a})
	if err != nil {
		t.Fatal(err)
	}
	ran := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"ran":"`+r.Method+`"}`)
	})
	s.Handle("/api/", ran)
	s.HandleWrite("GET /api/v1/handout", ran)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + s.Addr(), s
}

type answer struct {
	code      int
	challenge string
	errMsg    string
	ran       bool
}

func call(t *testing.T, method, url, token, ctype, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate")}
	var v struct {
		Error string `json:"error"`
		Ran   string `json:"ran"`
	}
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: %d with Content-Type %q, want a JSON error", method, url, resp.StatusCode, ct)
		}
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Errorf("%s %s: body %q is not JSON: %v", method, url, raw, err)
	}
	a.errMsg, a.ran = v.Error, v.Ran == method
	return a
}

func TestAPIAuthTokens(t *testing.T) {
	base, s := startAuth(t, config.APIAuth{APIAuthMode: config.APIAuthTokens, APITokensFile: tokensFile(t)})
	api := base + "/api/v1/thing"
	const js = "application/json"
	for _, c := range []struct {
		name, method, token, ctype, body string
		code                             int
		challenge                        string // substring of WWW-Authenticate; "" none
		msg                              string // substring of the error
	}{
		{"read without token", "GET", "", "", "", 401, "Bearer", "needs a bearer token"},
		{"read with unknown token", "GET", "not-a-token-0123456789", "", "", 401, `error="invalid_token"`, "not one of"},
		{"read with a read token's prefix", "GET", readToken[:20], "", "", 401, "invalid_token", ""},
		{"read with read token", "GET", readToken, "", "", 202, "", ""},
		{"read with write token", "GET", writeToken, "", "", 202, "", ""},
		{"write without token", "POST", "", js, "{}", 401, "Bearer", "needs a bearer token"},
		{"write with read token", "POST", readToken, js, "{}", 403, `error="insufficient_scope"`, "scope write"},
		{"write with write token", "POST", writeToken, js, "{}", 202, "", ""},
		{"json with charset", "POST", writeToken, "application/json; charset=utf-8", "{}", 202, "", ""},
		{"form post", "POST", writeToken, "application/x-www-form-urlencoded", "a=1", 415, "", "application/json"},
		{"text/plain post", "POST", writeToken, "text/plain", "{}", 415, "", "application/json"},
		{"empty post without type", "POST", writeToken, "", "", 415, "", "application/json"},
		{"delete with read token", "DELETE", readToken, js, "", 403, "insufficient_scope", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := call(t, c.method, api, c.token, c.ctype, c.body)
			if a.code != c.code {
				t.Fatalf("status %d (%q), want %d", a.code, a.errMsg, c.code)
			}
			if c.code < 400 && !a.ran {
				t.Error("the handler did not run")
			}
			if c.code >= 400 && a.ran {
				t.Error("the handler ran on a refused request")
			}
			if (c.challenge == "") != (a.challenge == "") || !strings.Contains(a.challenge, c.challenge) {
				t.Errorf("WWW-Authenticate %q, want it to contain %q", a.challenge, c.challenge)
			}
			if !strings.Contains(a.errMsg, c.msg) {
				t.Errorf("error %q, want it to contain %q", a.errMsg, c.msg)
			}
			if strings.Contains(a.errMsg, readToken) || strings.Contains(a.errMsg, writeToken) {
				t.Errorf("error %q shows a token", a.errMsg)
			}
		})
	}
	// Health, readiness and metrics stay open.
	s.SetReady(true)
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := get(t, base+p); code != 200 {
			t.Errorf("%s without a token = %d, want 200", p, code)
		}
	}
	if n := testutil.ToFloat64(s.auth.denied.WithLabelValues("read_scope")); n != 2 {
		t.Errorf(`driftwatch_api_requests_denied_total{reason="read_scope"} = %v, want 2`, n)
	}
}

// TestAPIAuthHandleWrite: a GET mounted with HandleWrite (the labeling
// queue's, which records what it hands out) is a write: a read token is
// refused, a write token needs the bearer header (not basic auth) and
// Content-Type application/json; the routes beside it stay reads.
func TestAPIAuthHandleWrite(t *testing.T) {
	base, _ := startAuth(t, config.APIAuth{APIAuthMode: config.APIAuthTokens, APITokensFile: tokensFile(t)})
	const js = "application/json"
	for _, c := range []struct {
		name, path, token, ctype string
		code                     int
	}{
		{"read token", "/api/v1/handout", readToken, js, 403},
		{"write token", "/api/v1/handout", writeToken, js, 202},
		{"write token without JSON type", "/api/v1/handout", writeToken, "", 415},
		{"no token", "/api/v1/handout", "", js, 401},
		{"a read route beside it", "/api/v1/thing", readToken, "", 202},
	} {
		t.Run(c.name, func(t *testing.T) {
			if a := call(t, "GET", base+c.path, c.token, c.ctype, ""); a.code != c.code {
				t.Errorf("status %d (%q), want %d", a.code, a.errMsg, c.code)
			}
		})
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/handout", nil)
	req.SetBasicAuth("x", writeToken)
	req.Header.Set("Content-Type", js)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("write token as basic auth: %d, want 401", resp.StatusCode)
	}
}

func TestAPIAuthDefaultRefusesWrites(t *testing.T) {
	base, _ := startAuth(t, config.DefaultAPIAuth())
	if a := call(t, "GET", base+"/api/v1/thing", "", "", ""); a.code != 202 {
		t.Errorf("read without tokens configured = %d, want it open", a.code)
	}
	a := call(t, "POST", base+"/api/v1/thing", "", "application/json", "{}")
	if a.code != 401 || !strings.Contains(a.challenge, "Bearer") || !strings.Contains(a.errMsg, "api_tokens_file") {
		t.Errorf("write without tokens configured = %d %q %q, want 401 saying how to configure api_tokens_file", a.code, a.challenge, a.errMsg)
	}
	// A token is no way in while none is configured.
	if a := call(t, "POST", base+"/api/v1/thing", writeToken, "application/json", "{}"); a.code != 401 {
		t.Errorf("write with a token while none is configured = %d, want 401", a.code)
	}
}

func TestAPIAuthNone(t *testing.T) {
	base, _ := startAuth(t, config.APIAuth{APIAuthMode: config.APIAuthNone})
	if a := call(t, "POST", base+"/api/v1/thing", "", "application/json", "{}"); a.code != 202 {
		t.Errorf("write with api_auth none = %d, want it open", a.code)
	}
	if a := call(t, "POST", base+"/api/v1/thing", "", "application/x-www-form-urlencoded", "a=1"); a.code != 415 {
		t.Errorf("form post with api_auth none = %d, want 415", a.code)
	}
	// DNS rebinding: a page of evil.example resolved to 127.0.0.1.
	req, _ := http.NewRequest("POST", base+"/api/v1/thing", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	req.Host = "evil.example:" + base[strings.LastIndex(base, ":")+1:]
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("api_auth none, Host %s: %d, want 403", req.Host, resp.StatusCode)
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:9102", "[::]:0"} {
		_, err := New(Options{Name: "authtest", Addr: addr, Auth: config.APIAuth{APIAuthMode: config.APIAuthNone}})
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("api_auth none on %s: err %v, want a refusal naming loopback", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "localhost:0"} {
		if !config.LoopbackAddr(addr) {
			t.Errorf("LoopbackAddr(%q) = false", addr)
		}
	}
}

func TestAPITokensFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, body, want string }{
		{"empty", "# nothing\n", "holds no token"},
		{"bad scope", "abcdefghijklmnopqrstuvwxyz admin\n", `scope "admin"`},
		{"no scope", "abcdefghijklmnopqrstuvwxyz\n", "want 'TOKEN read'"},
		{"short", "s3cr3t write\n", "at least 16"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			os.WriteFile(p, []byte(c.body), 0o600)
			_, err := New(Options{Name: "authtest", Addr: "127.0.0.1:0", Auth: config.APIAuth{APIAuthMode: config.APIAuthTokens, APITokensFile: p}})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), "abcdefghijklmnop") || strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q shows the token", err)
			}
		})
	}
}

// A browser sends the token as a basic-auth password (the console's pages
// offer that challenge); it counts for reads only, since a browser also
// resends it on requests other sites make.
func TestAPIAuthBasicForReads(t *testing.T) {
	base, s := startAuth(t, config.APIAuth{APIAuthMode: config.APIAuthTokens, APITokensFile: tokensFile(t)})
	s.Handle("/ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ran":"`+r.Method+`"}`)
	}))
	for _, c := range []struct {
		name, method, path, user, pass string
		code                           int
		challenge                      string
	}{
		{"console page without credentials", "GET", "/ui/", "", "", 401, `Basic realm="driftwatch console`},
		{"console page with a read token", "GET", "/ui/", "anyone", readToken, 200, ""},
		{"console page with a wrong password", "GET", "/ui/", "anyone", "not-a-token-0123456789", 401, "Basic"},
		{"API read with a read token as password", "GET", "/api/v1/thing", "", readToken, 202, ""},
		{"API read without credentials", "GET", "/api/v1/thing", "", "", 401, "Bearer"},
		{"write with a write token as password", "POST", "/api/v1/thing", "x", writeToken, 401, "Bearer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, base+c.path, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if c.pass != "" {
				req.SetBasicAuth(c.user, c.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.code {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, raw, c.code)
			}
			ch := resp.Header.Get("WWW-Authenticate")
			if (c.challenge == "") != (ch == "") || !strings.Contains(ch, c.challenge) {
				t.Errorf("WWW-Authenticate %q, want it to contain %q", ch, c.challenge)
			}
			if ran := strings.Contains(string(raw), `"ran"`); ran != (c.code < 400) {
				t.Errorf("handler ran = %v on status %d", ran, resp.StatusCode)
			}
		})
	}
}
