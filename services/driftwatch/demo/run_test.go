package demo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/internal/teststack"
)

// TestDemoClosesTheLoop runs the demo as make demo does, against the real
// everything: the shared Kafka broker and ClickHouse server (a topic
// prefix and a database of its own, so nothing else's data is in its
// way), Prometheus with the deployed rules (every "for" cut to 10 s, as
// scripts/demo.sh does), Alertmanager with the deployed configuration,
// and the ingest, monitor, trainer and serve binaries with the demo's
// configuration files (deploy/demo). Every step of the timeline must
// happen: bootstrap, a champion served, traffic and labels, the monitor's
// drift, the alert in Alertmanager, a trigger, a promotion, serve's reload
// and the recovered ROC AUC. It takes about three and a half minutes.
func TestDemoClosesTheLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes minutes (-short)")
	}
	promBin := binary(t, "prometheus")
	amBin := binary(t, "prometheus-alertmanager")
	brokers := testenv.KafkaBrokers(t)
	chURL := testenv.ClickHouseURL(t)
	root := teststack.RepoRoot(t)
	ingestBin := teststack.Build(t, "./services/ingest")
	monitorBin := teststack.Build(t, "./services/monitor")
	trainerBin := teststack.Build(t, "./services/trainer")
	serveBin := teststack.Build(t, "./services/serve")
	dir := t.TempDir()

	suffix := fmt.Sprintf("%08x", rand.Uint32())
	u, err := url.Parse(chURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/demo_" + suffix
	db := u.String()
	prefix := "demo" + suffix + "."
	addr := func() string { return "127.0.0.1:" + strconv.Itoa(teststack.FreePort(t)) }
	svcAddr := map[string]string{"ingest": addr(), "monitor": addr(), "trainer": addr(), "serve": addr()}
	promAddr, amAddr := addr(), addr()
	env := []string{
		"DRIFTWATCH_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"DRIFTWATCH_CLICKHOUSE_URL=" + db,
		"DRIFTWATCH_TOPIC_PREFIX=" + prefix,
		"DRIFTWATCH_API_AUTH=none",
		"DRIFTWATCH_INGEST_BATCH_AGE=200ms",
		"DRIFTWATCH_TRAINER_DATA_DIR=" + filepath.Join(dir, "trainer"),
		"DRIFTWATCH_MONITOR_CONSOLE_URL=http://" + svcAddr["monitor"],
	}

	am := teststack.Start(t, "alertmanager", amBin, nil, "--config.file="+filepath.Join(root, "deploy/alertmanager/alertmanager.yml"),
		"--storage.path="+filepath.Join(dir, "alertmanager"), "--web.listen-address="+amAddr, "--cluster.listen-address=")
	teststack.WaitHTTP(t, "http://"+amAddr+"/-/ready", 30*time.Second, am)
	bins := map[string]string{"ingest": ingestBin, "monitor": monitorBin, "trainer": trainerBin, "serve": serveBin}
	// ingest first: it applies the schema the others read.
	for _, svc := range []string{"ingest", "monitor", "trainer", "serve"} {
		var args []string
		if cfg := filepath.Join(root, "deploy/demo", svc+".yml"); fileExists(cfg) {
			args = []string{"-config", cfg}
		}
		p := teststack.Start(t, svc, bins[svc], append(env, "DRIFTWATCH_HTTP_ADDR="+svcAddr[svc]), args...)
		teststack.WaitHTTP(t, "http://"+svcAddr[svc]+"/readyz", 90*time.Second, p)
	}
	rulesDir := filepath.Join(dir, "rules")
	shortenRules(t, filepath.Join(root, "deploy/prometheus/rules/driftwatch.yml"), filepath.Join(rulesDir, "driftwatch.yml"))
	promCfg := filepath.Join(dir, "prometheus.yml")
	var b strings.Builder
	fmt.Fprintf(&b, "global: {scrape_interval: 2s, evaluation_interval: 2s}\nrule_files: [%q]\n", rulesDir+"/*.yml")
	fmt.Fprintf(&b, "alerting: {alertmanagers: [{static_configs: [{targets: [%q]}]}]}\nscrape_configs:\n", amAddr)
	for _, svc := range []string{"ingest", "monitor", "trainer", "serve"} {
		fmt.Fprintf(&b, "  - {job_name: driftwatch-%s, scrape_timeout: 2s, static_configs: [{targets: [%q]}]}\n", svc, svcAddr[svc])
	}
	if err := os.WriteFile(promCfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := teststack.Start(t, "prometheus", promBin, nil, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "prometheus"),
		"--web.listen-address="+promAddr)
	teststack.WaitHTTP(t, "http://"+promAddr+"/-/ready", 60*time.Second, prom)

	cfg := DefaultConfig()
	cfg.ServeURL, cfg.MonitorURL, cfg.AlertmanagerURL = "http://"+svcAddr["serve"], "http://"+svcAddr["monitor"], "http://"+amAddr
	cfg.Kafka = config.Kafka{KafkaBrokers: brokers, TopicPrefix: prefix}
	cfg.ClickHouse = config.ClickHouse{ClickHouseURL: db}
	cfg.Progress = 30 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var out logWriter
	out.t = t
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	err = Run(ctx, cfg, NewTimeline(&out, cfg.Poll, cfg.Progress))
	if err != nil {
		t.Fatalf("the demo failed: %v", err)
	}
	for _, step := range []string{"bootstrap rows labelled in ClickHouse", "serve serves the champion", "traffic through predict, labels through outcomes",
		"the monitor flags the drift", "the alert reaches Alertmanager", "a retrain trigger", "the trainer promotes a new champion",
		"serve answers with the new champion", "live performance recovers", "the loop closed"} {
		if !strings.Contains(out.b.String(), step) {
			t.Errorf("the timeline lacks %q", step)
		}
	}
}

// logWriter logs each line of the timeline as the test goes.
type logWriter struct {
	t *testing.T
	b strings.Builder
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.b.Write(p)
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var forLine = regexp.MustCompile(`^(\s*)for: .*$`)

// shortenRules writes src with every rule's "for" cut to 10 s, but
// DriftwatchServiceDown's to 1m (a slow scrape of a busy machine must not
// inhibit the rest), as scripts/demo.sh does.
func shortenRules(t *testing.T, src, dst string) {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	name, n := "", 0
	for i, l := range lines {
		if _, after, ok := strings.Cut(l, "- alert: "); ok {
			name = strings.TrimSpace(after)
		}
		if m := forLine.FindStringSubmatch(l); m != nil {
			d := "10s"
			if name == "DriftwatchServiceDown" {
				d = "1m"
			}
			lines[i] = m[1] + "for: " + d
			n++
		}
	}
	if n == 0 {
		t.Fatalf("%s has no \"for\" to shorten", src)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// binary returns the path of a Debian-packaged tool, or reports it
// unavailable (a failure under CI=true).
func binary(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		testenv.Unavailable(t, "%s is not on PATH: run `make deps` (scripts/deps.sh) to install it", name)
	}
	return path
}
