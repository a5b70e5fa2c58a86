package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAPIAuthValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "tokens")
	os.WriteFile(good, []byte("# ops\nabcdefghijklmnop-read read\nabcdefghijklmnop-write write\n"), 0o600)
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("abcdefghijklmnop-secret admin\n"), 0o600)
	for _, c := range []struct {
		name string
		a    APIAuth
		addr string
		want string // "" valid
	}{
		{"default", DefaultAPIAuth(), "0.0.0.0:9102", ""},
		{"tokens", APIAuth{APIAuthMode: APIAuthTokens, APITokensFile: good}, "0.0.0.0:9102", ""},
		{"missing file", APIAuth{APIAuthMode: APIAuthTokens, APITokensFile: filepath.Join(dir, "nope")}, "127.0.0.1:1", "api_tokens_file: read API tokens"},
		{"bad scope", APIAuth{APIAuthMode: APIAuthTokens, APITokensFile: bad}, "127.0.0.1:1", `bad:1: scope "admin"`},
		{"none on loopback", APIAuth{APIAuthMode: APIAuthNone}, "127.0.0.1:9102", ""},
		{"none on localhost", APIAuth{APIAuthMode: APIAuthNone}, "localhost:9102", ""},
		{"none on every interface", APIAuth{APIAuthMode: APIAuthNone}, ":9102", "only on a loopback address"},
		{"none on a LAN address", APIAuth{APIAuthMode: APIAuthNone}, "10.1.2.3:9102", "only on a loopback address"},
		{"none with tokens", APIAuth{APIAuthMode: APIAuthNone, APITokensFile: good}, "127.0.0.1:9102", "contradicts api_tokens_file"},
		{"unknown mode", APIAuth{APIAuthMode: "basic"}, "127.0.0.1:9102", `"basic" is neither tokens nor none`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.a.Validate(c.addr)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("Validate(%q) = %v, want %q", c.addr, err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "abcdefghijklmnop") {
				t.Errorf("error %q shows a token", err)
			}
		})
	}
}

func TestTriggerSigningKey(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	os.WriteFile(p, []byte("  0123456789abcdef0123456789abcdef\n"), 0o600)
	s := TriggerSigning{TriggerSigningKeyFile: p}
	if k, err := s.Key(); err != nil || string(k) != "0123456789abcdef0123456789abcdef" {
		t.Errorf("Key() = %q, %v", k, err)
	}
	os.WriteFile(p, []byte("short-key\n"), 0o600)
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "want at least 32") || strings.Contains(err.Error(), "short-key") {
		t.Errorf("short key: %v", err)
	}
	if k, err := (&TriggerSigning{}).Key(); k != nil || err != nil {
		t.Errorf("no file: %q %v", k, err)
	}
}
