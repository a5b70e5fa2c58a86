package monitor

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/signing"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/internal/teststack"
	"github.com/driftwatch/driftwatch/schemas"
)

const (
	testReadToken  = "monitor-read-0123456789abcdef"
	testWriteToken = "monitor-write-0123456789abcdef"
	testSigningKey = "monitor-test-signing-key-0123456789abcdef"
)

// serviceConfig is the monitor service's configuration on the test stack:
// a fresh database and topic prefix, a free loopback port.
func serviceConfig(t *testing.T) *Config {
	t.Helper()
	_, db := testdb.Open(t, "monitor_auth")
	cfg := DefaultConfig()
	cfg.KafkaBrokers = testenv.KafkaBrokers(t)
	cfg.TopicPrefix = "monitor-auth-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "."
	cfg.ClickHouseURL = testdb.URL(t, db)
	cfg.HTTPAddr = "127.0.0.1:" + strconv.Itoa(teststack.FreePort(t))
	cfg.ShutdownTimeout = 10 * time.Second
	return cfg
}

// runService starts the monitor service and waits until it is ready.
func runService(t *testing.T, cfg *Config) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunService(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("monitor service: %v", err)
		}
	})
	base := "http://" + cfg.HTTPAddr
	for deadline := time.Now().Add(time.Minute); !teststack.OK(ctx, base+"/readyz"); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("monitor service ended before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("monitor service not ready within a minute")
		}
	}
	return base
}

func apiCall(t *testing.T, method, url, token, ctype, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
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
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil && strings.Contains(url, "/api/") {
		t.Errorf("%s %s: %d, body %q is not JSON", method, url, resp.StatusCode, raw)
	}
	return resp.StatusCode, resp.Header, v
}

// TestServiceAPIAuth runs the monitor service (real Kafka, the embedded
// ClickHouse) with a tokens file and a signing key: the API wants a token,
// a write a write token and a JSON body (the labeling queue's GET too); health, readiness and metrics stay
// open; the manual trigger it publishes is signed with the key.
func TestServiceAPIAuth(t *testing.T) {
	cfg := serviceConfig(t)
	dir := t.TempDir()
	cfg.APITokensFile = filepath.Join(dir, "tokens")
	cfg.TriggerSigningKeyFile = filepath.Join(dir, "signing.key")
	os.WriteFile(cfg.APITokensFile, []byte("# test tokens\n"+testReadToken+" read\n"+testWriteToken+" write\n"), 0o600)
	os.WriteFile(cfg.TriggerSigningKeyFile, []byte(testSigningKey+"\n"), 0o600)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	base := runService(t, cfg)
	post := base + "/api/v1/models/model-0/triggers"
	queue := base + "/api/v1/models/model-0/labeling-queue?limit=5&assignee=auth-test"
	const js = "application/json"

	for _, c := range []struct {
		name, method, url, token, ctype, body string
		code                                  int
		challenge                             string
	}{
		{"read without token", "GET", base + "/api/v1/models", "", "", "", 401, "Bearer"},
		{"read with a wrong token", "GET", base + "/api/v1/triggers", "wrong-0123456789abcdef", "", "", 401, "invalid_token"},
		{"read with read token", "GET", base + "/api/v1/models", testReadToken, "", "", 200, ""},
		{"trigger without token", "POST", post, "", js, `{"note":"x"}`, 401, "Bearer"},
		{"trigger with read token", "POST", post, testReadToken, js, `{"note":"x"}`, 403, "insufficient_scope"},
		{"form post with write token", "POST", post, testWriteToken, "application/x-www-form-urlencoded", "note=x", 415, ""},
		{"trigger with write token", "POST", post, testWriteToken, js, `{"note":"signed","idempotency_key":"auth-test"}`, 201, ""},
		// The labeling queue records what it hands out: a GET that writes.
		{"labeling queue with read token", "GET", queue, testReadToken, js, "", 403, "insufficient_scope"},
		{"labeling queue with write token as basic auth", "GET", strings.Replace(queue, "http://", "http://x:"+testWriteToken+"@", 1), "", js, "", 401, "Bearer"},
		{"labeling queue without JSON type", "GET", queue, testWriteToken, "", "", 415, ""},
		{"labeling queue with write token", "GET", queue, testWriteToken, js, "", 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, h, body := apiCall(t, c.method, c.url, c.token, c.ctype, c.body)
			if code != c.code {
				t.Fatalf("status %d %v, want %d", code, body, c.code)
			}
			if got := h.Get("WWW-Authenticate"); !strings.Contains(got, c.challenge) || (c.challenge == "") != (got == "") {
				t.Errorf("WWW-Authenticate %q, want %q", got, c.challenge)
			}
			if code >= 400 {
				if msg, _ := body["error"].(string); msg == "" || h.Get("Content-Type") != "application/json" {
					t.Errorf("error answer %v (%s), want a JSON error", body, h.Get("Content-Type"))
				}
			}
		})
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _, _ := apiCall(t, "GET", base+p, "", "", ""); code != 200 {
			t.Errorf("%s without a token = %d, want 200", p, code)
		}
	}
	// Only the write-token trigger was recorded and published, signed.
	code, _, body := apiCall(t, "GET", base+"/api/v1/triggers?model=model-0", testReadToken, "", "")
	if trigs, _ := body["triggers"].([]any); code != 200 || len(trigs) != 1 {
		t.Fatalf("GET triggers = %d %v, want the one manual trigger", code, body)
	}
	kopts := kafkaio.Options{Brokers: cfg.KafkaBrokers, TopicPrefix: cfg.TopicPrefix}
	rd, err := kafkaio.NewReader(kopts, schemas.TopicRetrainTriggers, cfg.TopicPrefix+"auth-test-reader")
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	msg, err := rd.FetchMessage(ctx)
	if err != nil {
		t.Fatalf("read the published trigger: %v", err)
	}
	if err := signing.New([]byte(testSigningKey)).Verify(msg); err != nil {
		t.Errorf("published trigger: %v (headers %v)", err, msg.Headers)
	}
	if err := signing.New([]byte("another-key-0123456789abcdef0123456789")).Verify(msg); err == nil {
		t.Error("the published trigger verifies under another key too")
	}
}

// TestServiceAPIAuthDefaults: without a tokens file reads are open and the
// manual trigger is refused (401, saying how to configure tokens);
// api_auth none opens it on loopback and refuses to start elsewhere.
func TestServiceAPIAuthDefaults(t *testing.T) {
	t.Run("no tokens file", func(t *testing.T) {
		cfg := serviceConfig(t)
		base := runService(t, cfg)
		if code, _, body := apiCall(t, "GET", base+"/api/v1/models", "", "", ""); code != 200 {
			t.Errorf("read = %d %v, want open", code, body)
		}
		code, h, body := apiCall(t, "POST", base+"/api/v1/models/model-0/triggers", "", "application/json", `{}`)
		if msg, _ := body["error"].(string); code != 401 || !strings.Contains(msg, "api_tokens_file") || !strings.Contains(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("trigger = %d %v, want 401 saying to set api_tokens_file", code, body)
		}
		if code, _, body := apiCall(t, "GET", base+"/api/v1/models/model-0/labeling-queue", "", "application/json", ""); code != 401 {
			t.Errorf("labeling queue = %d %v, want 401 (a write)", code, body)
		}
	})
	t.Run("api_auth none on loopback", func(t *testing.T) {
		cfg := serviceConfig(t)
		cfg.APIAuthMode = config.APIAuthNone
		base := runService(t, cfg)
		if code, _, body := apiCall(t, "POST", base+"/api/v1/models/model-0/triggers", "", "application/json", `{}`); code != 201 {
			t.Errorf("trigger with api_auth none = %d %v, want 201", code, body)
		}
		if code, _, _ := apiCall(t, "POST", base+"/api/v1/models/model-0/triggers", "", "text/plain", `{}`); code != 415 {
			t.Errorf("text/plain trigger with api_auth none = %d, want 415", code)
		}
	})
	t.Run("api_auth none on every interface", func(t *testing.T) {
		cfg := serviceConfig(t)
		cfg.APIAuthMode = config.APIAuthNone
		cfg.HTTPAddr = "0.0.0.0:" + strconv.Itoa(teststack.FreePort(t))
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("Validate: %v, want a refusal naming loopback", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := RunService(ctx, cfg)
		if err == nil || !strings.Contains(err.Error(), "loopback") || ctx.Err() != nil {
			t.Errorf("RunService: %v, want a refusal at start naming loopback", err)
		}
	})
}
