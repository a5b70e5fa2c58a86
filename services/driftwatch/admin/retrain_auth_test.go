package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

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

// TestRetrainThroughMonitorAPI: driftwatch retrain -monitor-url posts to
// the real monitor service's API, which wants a write token: refused
// without one (or with a read token), published with one (file or
// DRIFTWATCH_API_TOKEN).
func TestRetrainThroughMonitorAPI(t *testing.T) {
	base, dir := startMonitor(t, "cli_monitor_api", func(*monitor.Config) {})

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

// startMonitor runs the real monitor service in process on a fresh
// database with a read token and a write token (cli-read-token-…,
// cli-write-token-…), changed by edit, and returns its base URL and a
// directory for the test's files.
func startMonitor(t *testing.T, db string, edit func(*monitor.Config)) (base, dir string) {
	t.Helper()
	_, db = testdb.Open(t, db)
	dir = t.TempDir()
	cfg := monitor.DefaultConfig()
	cfg.KafkaBrokers = testenv.KafkaBrokers(t)
	cfg.TopicPrefix = "cli-api-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "."
	cfg.ClickHouseURL = testdb.URL(t, db)
	cfg.HTTPAddr = "127.0.0.1:" + strconv.Itoa(teststack.FreePort(t))
	cfg.APITokensFile = filepath.Join(dir, "tokens")
	os.WriteFile(cfg.APITokensFile, []byte("cli-read-token-0123456789 read\ncli-write-token-0123456789 write\n"), 0o600)
	edit(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- monitor.RunService(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	base = "http://" + cfg.HTTPAddr
	teststack.WaitHTTP(t, base+"/readyz", time.Minute, nil)
	return base, dir
}

// TestManualRetrainIsGated: driftwatch retrain goes through the monitor's
// gate like the monitor's own triggers. With daily_max 2, two manual
// retrains of a model are published and the third is refused, exit 1,
// naming daily_max; GET /api/v1/triggers lists the two, as manual, with
// their notes, and nothing more.
func TestManualRetrainIsGated(t *testing.T) {
	base, _ := startMonitor(t, "cli_gate", func(c *monitor.Config) { c.Triggers.DailyMax = 2 })
	env := map[string]string{"DRIFTWATCH_API_TOKEN": "cli-write-token-0123456789"}
	var ids []string
	for i, note := range []string{"first", "second", "third"} {
		code, out, errs := runCLI(env, "retrain", "-model", "model-9", "-reason", note, "-monitor-url", base)
		if i < 2 {
			m := regexp.MustCompile(`^manual retrain trigger (\S+) for model-9: published by the monitor\n$`).FindStringSubmatch(out)
			if code != 0 || m == nil {
				t.Fatalf("retrain %s: exit %d, stdout %q, stderr %q", note, code, out, errs)
			}
			ids = append(ids, m[1])
			continue
		}
		if code != 1 || !strings.Contains(errs, "refused the manual trigger for model-9: daily_max") || !strings.Contains(errs, "nothing was published") {
			t.Errorf("retrain beyond daily_max: exit %d, stdout %q, stderr %q; want exit 1 naming daily_max", code, out, errs)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/triggers?model=model-9", nil)
	req.Header.Set("Authorization", "Bearer cli-read-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Triggers []monitor.TriggerRow `json:"triggers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/triggers: %s %v", resp.Status, err)
	}
	byID := map[string]monitor.TriggerRow{}
	for _, tr := range got.Triggers {
		byID[tr.TriggerID] = tr
	}
	if len(got.Triggers) != 2 {
		t.Errorf("GET /api/v1/triggers lists %d triggers of model-9, want the 2 published: %+v", len(got.Triggers), got.Triggers)
	}
	for i, id := range ids {
		tr, ok := byID[id]
		if !ok || tr.Reason != string(schemas.TriggerManual) || !strings.Contains(string(tr.Evidence), []string{"first", "second"}[i]) {
			t.Errorf("trigger %s in GET /api/v1/triggers: %+v (listed %v)", id, tr, ok)
		}
	}
	// The refusal is counted with the monitor's other trigger decisions.
	mresp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer mresp.Body.Close()
	metrics, _ := io.ReadAll(mresp.Body)
	for _, want := range []string{`driftwatch_monitor_triggers_total{outcome="published",reason="manual"} 2`, `driftwatch_monitor_triggers_total{outcome="daily_max",reason="manual"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestRetrainMonitorUnreachable: with no monitor listening, driftwatch
// retrain fails at once, naming the URL and the flag; a URL that is not
// one is a configuration error.
func TestRetrainMonitorUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	code, out, errs := runCLI(nil, "retrain", "-model", "model-1", "-monitor-url", "http://"+addr)
	if code != 1 || !strings.Contains(errs, "the monitor at http://"+addr+" is unreachable") || !strings.Contains(errs, "-monitor-url") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, bad := range []string{"127.0.0.1:9102", "ftp://x", "http://user:pw@127.0.0.1:9102"} {
		code, _, errs := runCLI(nil, "retrain", "-model", "model-1", "-monitor-url", bad)
		if code != 2 || !strings.Contains(errs, "monitor_url:") || strings.Contains(errs, "pw@") {
			t.Errorf("-monitor-url %q: exit %d, stderr %q; want a configuration error", bad, code, errs)
		}
	}
}
