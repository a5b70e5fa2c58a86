package admin

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/signing"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/internal/teststack"
	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

func runCLI(env map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := command.Main(args, command.Env{Stdout: &out, Stderr: &errb, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}, Commands())
	return code, out.String(), errb.String()
}

// TestRetrainSigned: driftwatch retrain with trigger_signing_key_file
// publishes the trigger to Kafka signed with the key.
func TestRetrainSigned(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	prefix := "cli-signed-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "."
	kopts := kafkaio.Options{Brokers: brokers, TopicPrefix: prefix}
	if err := kafkaio.EnsureTopics(context.Background(), kopts, kafkaio.Specs(kopts, schemas.TopicFor(schemas.TopicRetrainTriggers))); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "signing.key")
	os.WriteFile(key, []byte("cli-test-signing-key-0123456789abcdef\n"), 0o600)
	env := map[string]string{"DRIFTWATCH_KAFKA_BROKERS": strings.Join(brokers, ","), "DRIFTWATCH_TOPIC_PREFIX": prefix, "DRIFTWATCH_TRIGGER_SIGNING_KEY_FILE": key}
	if code, out, errs := runCLI(env, "retrain", "-model", "model-7", "-reason", "cli test"); code != 0 {
		t.Fatalf("retrain: exit %d, %q %q", code, out, errs)
	}
	rd, err := kafkaio.NewReader(kopts, schemas.TopicRetrainTriggers, prefix+"reader")
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	msg, err := rd.FetchMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := signing.New([]byte("cli-test-signing-key-0123456789abcdef")).Verify(msg); err != nil {
		t.Errorf("the CLI's trigger: %v (headers %v)", err, msg.Headers)
	}
	// A key file too short is refused before anything is published.
	os.WriteFile(key, []byte("short"), 0o600)
	if code, _, errs := runCLI(env, "retrain", "-model", "model-7"); code == 0 || !strings.Contains(errs, "trigger_signing_key_file") {
		t.Errorf("short key: exit %d, stderr %q", code, errs)
	}
}

// TestRetrainThroughMonitorAPI: driftwatch retrain -monitor-url posts to
// the real monitor service's API, which wants a write token: refused
// without one (or with a read token), published with one (file or
// DRIFTWATCH_API_TOKEN).
func TestRetrainThroughMonitorAPI(t *testing.T) {
	_, db := testdb.Open(t, "cli_monitor_api")
	dir := t.TempDir()
	cfg := monitor.DefaultConfig()
	cfg.KafkaBrokers = testenv.KafkaBrokers(t)
	cfg.TopicPrefix = "cli-api-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "."
	cfg.ClickHouseURL = testdb.URL(t, db)
	cfg.HTTPAddr = "127.0.0.1:" + strconv.Itoa(teststack.FreePort(t))
	cfg.APITokensFile = filepath.Join(dir, "tokens")
	os.WriteFile(cfg.APITokensFile, []byte("cli-read-token-0123456789 read\ncli-write-token-0123456789 write\n"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- monitor.RunService(ctx, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	base := "http://" + cfg.HTTPAddr
	teststack.WaitHTTP(t, base+"/readyz", time.Minute, nil)

	tokFile := filepath.Join(dir, "write-token")
	os.WriteFile(tokFile, []byte("cli-write-token-0123456789\n"), 0o600)
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		ok   bool
		want string
	}{
		{"no token", nil, nil, false, "-api-token-file"},
		{"read token", map[string]string{"DRIFTWATCH_API_TOKEN": "cli-read-token-0123456789"}, nil, false, "403"},
		{"write token file", nil, []string{"-api-token-file", tokFile}, true, "published by the monitor"},
		{"write token in the environment", map[string]string{"DRIFTWATCH_API_TOKEN": "cli-write-token-0123456789"}, []string{"-reason", "again"}, true, "published by the monitor"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"retrain", "-model", "model-3", "-monitor-url", base}, c.args...)
			code, out, errs := runCLI(c.env, args...)
			if (code == 0) != c.ok || !strings.Contains(out+errs, c.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want ok=%v and %q", code, out, errs, c.ok, c.want)
			}
			if strings.Contains(out+errs, "cli-write-token") || strings.Contains(out+errs, "cli-read-token") {
				t.Errorf("output shows a token: %q %q", out, errs)
			}
		})
	}
}
