package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// API authentication modes (api_auth).
const (
	// APIAuthTokens: with api_tokens_file, every API call needs a bearer
	// token and a write needs a write token; without it reads are open
	// and writes are refused. The default.
	APIAuthTokens = "tokens"
	// APIAuthNone: no tokens at all, writes open too; allowed only on a
	// loopback http_addr (make run sets it).
	APIAuthNone = "none"
)

// APIAuth says who may call a service's HTTP API (every route a service
// mounts; /healthz, /readyz and /metrics stay open).
type APIAuth struct {
	APIAuthMode   string `yaml:"api_auth" env:"DRIFTWATCH_API_AUTH" flag:"api-auth" help:"API authentication: tokens (bearer tokens from api_tokens_file; without one reads are open and writes refused) or none (everything open, only on a loopback http_addr)"`
	APITokensFile string `yaml:"api_tokens_file" env:"DRIFTWATCH_API_TOKENS_FILE" flag:"api-tokens-file" help:"file of API bearer tokens, one 'TOKEN read|write' a line, # comments; when set every API call needs a token"`
}

// DefaultAPIAuth returns api_auth tokens without a tokens file: reads
// open, writes refused.
func DefaultAPIAuth() APIAuth { return APIAuth{APIAuthMode: APIAuthTokens} }

// Validate reports an unknown mode, api_auth none on an address other
// than loopback or with a tokens file, and a tokens file that cannot be
// read or parsed (never echoing a token).
func (a *APIAuth) Validate(httpAddr string) error {
	var p problems
	switch a.APIAuthMode {
	case APIAuthTokens, "": // "": a Common built without DefaultCommon
		if a.APITokensFile != "" {
			if _, err := ReadAPITokens(a.APITokensFile); err != nil {
				p.add("api_tokens_file", "%v", err)
			}
		}
	case APIAuthNone:
		if !LoopbackAddr(httpAddr) {
			p.add("api_auth", "none leaves the API (manual retrain triggers included) open to anyone who reaches http_addr %q; it is allowed only on a loopback address (127.0.0.1:PORT, [::1]:PORT, localhost:PORT) — set api_tokens_file instead", httpAddr)
		}
		if a.APITokensFile != "" {
			p.add("api_auth", "none contradicts api_tokens_file %q: remove one", a.APITokensFile)
		}
	default:
		p.add("api_auth", "%q is neither tokens nor none", a.APIAuthMode)
	}
	return errors.Join(p...)
}

// LoopbackAddr reports whether the host of host:port is a loopback
// address or localhost; an empty host (every interface) is not.
func LoopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Scope is what an API token allows.
type Scope int

// Token scopes; a write token may also read.
const (
	ScopeRead Scope = iota + 1
	ScopeWrite
)

func (s Scope) String() string {
	switch s {
	case ScopeRead:
		return "read"
	case ScopeWrite:
		return "write"
	}
	return fmt.Sprintf("Scope(%d)", int(s))
}

// APIToken is one line of api_tokens_file.
type APIToken struct {
	Token Secret
	Scope Scope
}

// ReadAPITokens reads an api_tokens_file: one "TOKEN SCOPE" a line (scope
// read or write), blank lines and lines starting with # ignored. An error
// names the line, never its token. A file without a token is an error:
// it would leave the API open by mistake.
func ReadAPITokens(path string) ([]APIToken, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read API tokens: %w", err)
	}
	var out []APIToken
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			errs = append(errs, fmt.Errorf("%s:%d: want 'TOKEN read' or 'TOKEN write', got %d fields", path, n, len(f)))
			continue
		}
		var s Scope
		switch f[1] {
		case "read":
			s = ScopeRead
		case "write":
			s = ScopeWrite
		default:
			errs = append(errs, fmt.Errorf("%s:%d: scope %q is neither read nor write", path, n, f[1]))
			continue
		}
		if len(f[0]) < 16 {
			errs = append(errs, fmt.Errorf("%s:%d: token is %d characters, want at least 16 (openssl rand -hex 32 makes one)", path, n, len(f[0])))
			continue
		}
		out = append(out, APIToken{Token: Secret(f[0]), Scope: s})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read API tokens from %s: %w", path, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no token (want lines 'TOKEN read' or 'TOKEN write')", path)
	}
	return out, nil
}

// TriggerSigning is the key retrain triggers are signed with (HMAC-SHA256)
// by the monitor and the CLI and verified with by the trainer.
type TriggerSigning struct {
	TriggerSigningKeyFile string `yaml:"trigger_signing_key_file" env:"DRIFTWATCH_TRIGGER_SIGNING_KEY_FILE" flag:"trigger-signing-key-file" help:"file holding the HMAC-SHA256 key retrain triggers are signed with (publishers) and verified with (the trainer, which then dead-letters unsigned or forged ones); at least 32 bytes"`
}

// MinSigningKeyBytes is the shortest trigger signing key accepted.
const MinSigningKeyBytes = 32

// Validate reports a key file that cannot be read or holds a short key.
func (s *TriggerSigning) Validate() error {
	if s.TriggerSigningKeyFile == "" {
		return nil
	}
	if _, err := s.Key(); err != nil {
		return fmt.Errorf("trigger_signing_key_file: %w", err)
	}
	return nil
}

// Key reads the signing key: the file's bytes without surrounding white
// space; nil when no file is set.
func (s *TriggerSigning) Key() ([]byte, error) {
	if s.TriggerSigningKeyFile == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(s.TriggerSigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("read trigger signing key: %w", err)
	}
	key := bytes.TrimSpace(raw)
	if len(key) < MinSigningKeyBytes {
		return nil, fmt.Errorf("%s holds %d bytes, want at least %d (openssl rand -hex 32 > FILE makes one)", s.TriggerSigningKeyFile, len(key), MinSigningKeyBytes)
	}
	return key, nil
}

// APIClient is how a command authenticates to a service's API: a bearer
// token read from a file, or given in the environment (never a flag,
// which shows in ps).
type APIClient struct {
	APITokenFile string `yaml:"api_token_file" env:"DRIFTWATCH_API_TOKEN_FILE" flag:"api-token-file" help:"file holding the bearer token sent to the API (one of api_tokens_file's; a write needs a write token)"`
	APIToken     Secret `yaml:"api_token" env:"DRIFTWATCH_API_TOKEN" help:"bearer token sent to the API (environment only: flags show in ps)"`
}

// Validate reports both sources set, or a token file that cannot be read.
func (c *APIClient) Validate() error {
	if c.APITokenFile != "" && c.APIToken != "" {
		return errors.New("api_token_file and api_token (DRIFTWATCH_API_TOKEN): set one")
	}
	if _, err := c.Token(); err != nil {
		return fmt.Errorf("api_token_file: %w", err)
	}
	return nil
}

// Token returns the bearer token, "" when none is configured.
func (c *APIClient) Token() (string, error) {
	if c.APITokenFile == "" {
		return strings.TrimSpace(c.APIToken.Reveal()), nil
	}
	raw, err := os.ReadFile(c.APITokenFile)
	if err != nil {
		return "", fmt.Errorf("read API token: %w", err)
	}
	tok := strings.TrimSpace(string(raw))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("%s must hold one token and nothing else", c.APITokenFile)
	}
	return tok, nil
}
