package service

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/internal/config"
)

// auth guards the API routes a service mounts with Handle (never
// /healthz, /readyz or /metrics):
//
//   - api_auth none (loopback only): no token is asked for, and only a
//     request whose Host is a loopback name is answered (403 otherwise,
//     against DNS rebinding);
//   - api_auth tokens with api_tokens_file: every call needs
//     "Authorization: Bearer TOKEN" (401 without or with an unknown one),
//     and a write (any method but GET and HEAD) a write token (403 with
//     a read token);
//   - api_auth tokens without a file: reads are open, writes refused (401,
//     saying how to configure tokens), so that a web page visited while a
//     local stack runs cannot trigger anything.
//
// A route mounted with HandleWrite is a write whatever its method (a GET
// that changes state): it needs a write token, sent as a bearer header.
//
// A write's body must be Content-Type application/json (415 otherwise,
// even when empty, and for a GET mounted with HandleWrite too): a browser sends that type cross-site only after a
// CORS preflight, which the API never answers, so an HTML form or a
// no-cors fetch from another site is refused. Errors are JSON
// {"error": "..."}; 401 and 403 carry WWW-Authenticate: Bearer (Basic
// under /ui/, so that a browser asks for the token as a password).
type auth struct {
	none bool
	// digests are the tokens' SHA-256 digests, compared in constant time
	// (equal lengths, so no length leaks either); nil without a file.
	digests [][sha256.Size]byte
	scopes  []config.Scope
	denied  *prometheus.CounterVec
}

// newAuth reads the tokens file and refuses api_auth none on an address
// other than loopback.
func newAuth(a config.APIAuth, addr string, denied *prometheus.CounterVec) (*auth, error) {
	au := &auth{denied: denied}
	switch a.APIAuthMode {
	case config.APIAuthNone:
		if !config.LoopbackAddr(addr) {
			return nil, fmt.Errorf("api_auth none on http_addr %q: refused, since anyone who reaches it could call the API (manual triggers included); use a loopback address or api_tokens_file", addr)
		}
		if a.APITokensFile != "" {
			return nil, errors.New("api_auth none contradicts api_tokens_file: remove one")
		}
		au.none = true
	case config.APIAuthTokens, "":
		if a.APITokensFile == "" {
			return au, nil
		}
		toks, err := config.ReadAPITokens(a.APITokensFile)
		if err != nil {
			return nil, fmt.Errorf("api_tokens_file: %w", err)
		}
		for _, t := range toks {
			au.digests = append(au.digests, sha256.Sum256([]byte(t.Token.Reveal())))
			au.scopes = append(au.scopes, t.Scope)
		}
	default:
		return nil, fmt.Errorf("api_auth: %q is neither tokens nor none", a.APIAuthMode)
	}
	return au, nil
}

// scope returns the scope of the request's bearer token, 0 when it has
// none or an unknown one. Every token is compared, so the time taken does
// not say which matched.
//
// A read (GET or HEAD) may also send the token as the password of HTTP
// basic authentication (any user name), which is what a browser asks for
// on the console's pages. A write needs the bearer header: a browser
// resends basic credentials on its own, also to requests another site
// makes, and a bearer header it never adds unasked.
func (a *auth) scope(r *http.Request, write bool) config.Scope {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "bearer ")
	}
	if !ok && !write {
		_, tok, ok = r.BasicAuth()
	}
	if !ok {
		return 0
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return 0
	}
	d := sha256.Sum256([]byte(tok))
	var found config.Scope
	for i := range a.digests {
		if subtle.ConstantTimeCompare(d[:], a.digests[i][:]) == 1 {
			found = a.scopes[i]
		}
	}
	return found
}

// hostPort gives a Host header a port, so LoopbackAddr can split it.
func hostPort(host string) string {
	if strings.HasSuffix(host, "]") || !strings.Contains(host, ":") {
		return host + ":80"
	}
	return host
}

func isWrite(r *http.Request) bool { return r.Method != http.MethodGet && r.Method != http.MethodHead }

// How to configure tokens, told to a refused client.
const tokenHelp = "set api_tokens_file (DRIFTWATCH_API_TOKENS_FILE) to a file of lines 'TOKEN read' or 'TOKEN write' and send 'Authorization: Bearer TOKEN'; see docs/operations.md#protected-apis"

// wrap guards h; every request is a write when always is set (a GET that
// changes state, such as the labeling queue's, which records the rows it
// hands out).
func (a *auth) wrap(h http.Handler, always bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		write := always || isWrite(r)
		if a.none && !config.LoopbackAddr(hostPort(r.Host)) {
			// A page on another site whose name was made to resolve to
			// 127.0.0.1 (DNS rebinding) is same-origin to the browser
			// but still says its own name in Host.
			a.deny(w, http.StatusForbidden, "host", "", fmt.Sprintf("api_auth none answers only requests for a loopback host (127.0.0.1, localhost, [::1]), not %q", r.Host))
			return
		}
		if !a.none {
			switch {
			case a.digests == nil && write:
				a.deny(w, http.StatusUnauthorized, "unconfigured", `Bearer realm="driftwatch"`,
					"writes are refused while the service has no API tokens: "+tokenHelp+" (api_auth none, on a loopback http_addr only, opens them for local development)")
				return
			case a.digests == nil:
			default:
				s := a.scope(r, write)
				challenge, invalid := `Bearer realm="driftwatch"`, `Bearer realm="driftwatch", error="invalid_token"`
				if strings.HasPrefix(r.URL.Path, "/ui/") {
					// The console's pages: a browser asks for the token
					// (as the password) only when offered basic auth.
					challenge = `Basic realm="driftwatch console (password: an API token)", charset="UTF-8"`
					invalid = challenge
				}
				switch {
				case s == 0 && r.Header.Get("Authorization") == "":
					a.deny(w, http.StatusUnauthorized, "no_token", challenge, "this API needs a bearer token: "+tokenHelp)
					return
				case s == 0:
					a.deny(w, http.StatusUnauthorized, "bad_token", invalid, "the token is not one of api_tokens_file's")
					return
				case write && s < config.ScopeWrite:
					a.deny(w, http.StatusForbidden, "read_scope", `Bearer realm="driftwatch", error="insufficient_scope", scope="write"`, "this call writes and needs a token of scope write; the one sent has scope read")
					return
				}
			}
		}
		if write {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				a.deny(w, http.StatusUnsupportedMediaType, "content_type", "", fmt.Sprintf("a %s needs Content-Type: application/json, got %q", r.Method, r.Header.Get("Content-Type")))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func (a *auth) deny(w http.ResponseWriter, status int, reason, challenge, msg string) {
	a.denied.WithLabelValues(reason).Inc()
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
