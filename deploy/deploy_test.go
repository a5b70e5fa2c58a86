package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/internal/teststack"
)

// The tests run in deploy/, so paths are relative to it.
const (
	composeFile         = "../docker-compose.yml"
	prometheusLocal     = "prometheus/prometheus.yml"
	prometheusCompose   = "prometheus/prometheus.compose.yml"
	alertmanagerConfig  = "alertmanager/alertmanager.yml"
	prometheusRuleGlob  = "prometheus/rules/*.yml"
	prometheusTestGlob  = "prometheus/tests/*.yml"
	installHint         = "run `make deps` (scripts/deps.sh) to install it"
	composeInstallHint  = "run `scripts/deps.sh docker-compose`, or apt-get install -y docker-compose"
	defaultReceiverName = "driftwatch-default"
)

// tool returns the path of an external command, or reports it unavailable:
// a skip outside CI, a failure under CI=true.
func tool(t *testing.T, name, hint string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		testenv.Unavailable(t, "%s is not on PATH: %s", name, hint)
	}
	return path
}

// run runs a command in the test's working directory and fails the test with
// the command's output if it exits non-zero.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func glob(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatalf("glob %s: %v", pattern, err)
	}
	if len(files) == 0 {
		t.Fatalf("no files match %s", pattern)
	}
	return files
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
}

func TestDockerComposeConfig(t *testing.T) {
	dc := tool(t, "docker-compose", composeInstallHint)
	// Interpolation must not depend on the caller's environment.
	t.Setenv("DRIFTWATCH_TOPIC_PREFIX", "")
	t.Setenv("DRIFTWATCH_CLICKHOUSE_PASSWORD", "")
	run(t, dc, "-f", composeFile, "config", "-q")
}

// TestDockerComposeFiles checks what `docker-compose config` does not: that
// the files and folders the compose file mounts or builds from exist.
func TestDockerComposeFiles(t *testing.T) {
	var compose struct {
		Services map[string]struct {
			Build *struct {
				Context    string `yaml:"context"`
				Dockerfile string `yaml:"dockerfile"`
			} `yaml:"build"`
			Command any      `yaml:"command"`
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	readYAML(t, composeFile, &compose)
	for _, name := range []string{"kafka", "clickhouse", "prometheus", "alertmanager", "grafana", "ingest", "monitor", "trainer"} {
		if _, ok := compose.Services[name]; !ok {
			t.Errorf("%s has no service %q", composeFile, name)
		}
	}
	for name, svc := range compose.Services {
		for _, v := range svc.Volumes {
			src, _, ok := strings.Cut(v, ":")
			if !ok || !strings.HasPrefix(src, ".") {
				continue // a named volume
			}
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("service %s mounts %s: %v", name, src, err)
			}
		}
		if svc.Build != nil {
			df := svc.Build.Dockerfile
			if df == "" {
				df = "Dockerfile"
			}
			if _, err := os.Stat(filepath.Join("..", svc.Build.Context, df)); err != nil {
				t.Errorf("service %s builds from %s: %v", name, df, err)
			}
		}
	}
	// Prometheus in compose reads prometheus.compose.yml from the mounted
	// deploy/prometheus folder.
	if cmd, ok := compose.Services["prometheus"].Command.([]any); !ok ||
		!slices.Contains(cmd, any("--config.file=/etc/prometheus/"+filepath.Base(prometheusCompose))) {
		t.Errorf("prometheus in %s does not run with %s: command %v", composeFile, prometheusCompose, compose.Services["prometheus"].Command)
	}
}

func TestPrometheusConfig(t *testing.T) {
	promtool := tool(t, "promtool", installHint)
	for _, file := range []string{prometheusLocal, prometheusCompose} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			// Also checks every rule file the config loads.
			run(t, promtool, "check", "config", file)
		})
	}
}

func TestPrometheusRules(t *testing.T) {
	promtool := tool(t, "promtool", installHint)
	run(t, promtool, append([]string{"check", "rules"}, glob(t, prometheusRuleGlob)...)...)
	run(t, promtool, append([]string{"test", "rules"}, glob(t, prometheusTestGlob)...)...)
}

type promConfig struct {
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func (c promConfig) targets() map[string][]string {
	m := map[string][]string{}
	for _, sc := range c.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			m[sc.JobName] = append(m[sc.JobName], st.Targets...)
		}
	}
	return m
}

// TestPrometheusTargets checks the scrape targets against the local
// defaults in docs/architecture.md and that both configurations scrape the same jobs.
func TestPrometheusTargets(t *testing.T) {
	var local, compose promConfig
	readYAML(t, prometheusLocal, &local)
	readYAML(t, prometheusCompose, &compose)
	lt, ct := local.targets(), compose.targets()
	for _, tc := range []struct{ job, local, compose string }{
		{"driftwatch-ingest", "127.0.0.1:9101", "ingest:9101"},
		{"driftwatch-monitor", "127.0.0.1:9102", "monitor:9102"},
		{"driftwatch-trainer", "127.0.0.1:9103", "trainer:9103"},
	} {
		t.Run(tc.job, func(t *testing.T) {
			if got := lt[tc.job]; !slices.Equal(got, []string{tc.local}) {
				t.Errorf("%s: job %s scrapes %v, want [%s]", prometheusLocal, tc.job, got, tc.local)
			}
			if got := ct[tc.job]; !slices.Equal(got, []string{tc.compose}) {
				t.Errorf("%s: job %s scrapes %v, want [%s]", prometheusCompose, tc.job, got, tc.compose)
			}
		})
	}
	jobs := func(m map[string][]string) []string {
		var s []string
		for j := range m {
			s = append(s, j)
		}
		slices.Sort(s)
		return s
	}
	if lj, cj := jobs(lt), jobs(ct); !slices.Equal(lj, cj) {
		t.Errorf("%s scrapes jobs %v but %s scrapes %v; keep them in step", prometheusLocal, lj, prometheusCompose, cj)
	}
}

func TestAlertmanagerConfig(t *testing.T) {
	amtool := tool(t, "amtool", installHint+" (amtool ships with prometheus-alertmanager)")
	run(t, amtool, "check-config", alertmanagerConfig)
	for _, labels := range [][]string{
		{"alertname=DriftwatchServiceDown", "severity=page"},
		{"alertname=DriftwatchFeatureDrift", "severity=warning", "model=churn", "feature=f3", "job=driftwatch-monitor"},
		{"alertname=DriftwatchIngestLag", "severity=warning", "job=driftwatch-ingest", "topic=driftwatch.inferences"},
		{"alertname=Unclassified"},
	} {
		args := append([]string{"config", "routes", "test", "--config.file=" + alertmanagerConfig,
			"--verify.receivers=" + defaultReceiverName}, labels...)
		run(t, amtool, args...)
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTestFile struct {
	Tests []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestAlertRulesShape checks what promtool does not: every alert has a
// severity Alertmanager routes on, a summary and a description, and the
// unit tests show each alert both firing and staying silent.
func TestAlertRulesShape(t *testing.T) {
	alerts := map[string]bool{}
	for _, file := range glob(t, prometheusRuleGlob) {
		var rf ruleFile
		readYAML(t, file, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				if alerts[r.Alert] {
					t.Errorf("%s: alert %s defined twice", file, r.Alert)
				}
				alerts[r.Alert] = true
				if s := r.Labels["severity"]; s != "page" && s != "warning" {
					t.Errorf("%s: alert %s has severity %q, want page or warning (alertmanager.yml routes on them)", file, r.Alert, s)
				}
				for _, a := range []string{"summary", "description"} {
					if strings.TrimSpace(r.Annotations[a]) == "" {
						t.Errorf("%s: alert %s has no %s annotation", file, r.Alert, a)
					}
				}
				// A model's alert links to its page in the console
				// (console_url, docs/operations.md#alerts).
				if c := r.Annotations["console"]; g.Name == "driftwatch-models" &&
					(!strings.Contains(c, "driftwatch_console_info") || !strings.Contains(c, "/ui/models/{{ $labels.model | urlquery }}")) {
					t.Errorf("%s: alert %s has no console annotation linking driftwatch_console_info's url to /ui/models/{{ $labels.model | urlquery }}", file, r.Alert)
				}
			}
		}
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, file := range glob(t, prometheusTestGlob) {
		var tf ruleTestFile
		readYAML(t, file, &tf)
		for _, tc := range tf.Tests {
			for _, at := range tc.AlertRuleTest {
				if !alerts[at.Alertname] {
					t.Errorf("%s, test %q: no rule defines alert %s", file, tc.Name, at.Alertname)
				}
				if len(at.ExpAlerts) > 0 {
					fires[at.Alertname] = true
				} else {
					silent[at.Alertname] = true
				}
			}
		}
	}
	for a := range alerts {
		if !fires[a] {
			t.Errorf("no test in %s shows alert %s firing", prometheusTestGlob, a)
		}
		if !silent[a] {
			t.Errorf("no test in %s shows alert %s not firing", prometheusTestGlob, a)
		}
	}
}

// TestAlertmanagerInhibition runs the real Alertmanager with
// alertmanager.yml, posts alerts as Prometheus would and reads back which
// ones it mutes: with ingest down, ingest's own warnings and the monitor's
// model warnings are inhibited, an unrelated service's warning and the page
// itself are not.
func TestAlertmanagerInhibition(t *testing.T) {
	am := tool(t, "prometheus-alertmanager", installHint)
	addr := "127.0.0.1:" + strconv.Itoa(teststack.FreePort(t))
	cfg, err := filepath.Abs(alertmanagerConfig)
	if err != nil {
		t.Fatal(err)
	}
	proc := teststack.Start(t, "alertmanager", am, nil, "--config.file="+cfg, "--storage.path="+t.TempDir(),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	teststack.WaitHTTP(t, "http://"+addr+"/-/ready", 30*time.Second, proc)

	alerts := []map[string]string{
		{"alertname": "DriftwatchServiceDown", "severity": "page", "job": "driftwatch-ingest", "instance": "127.0.0.1:9101"},
		{"alertname": "DriftwatchIngestLag", "severity": "warning", "job": "driftwatch-ingest", "topic": "driftwatch.inferences"},
		{"alertname": "DriftwatchDataQuality", "severity": "warning", "job": "driftwatch-monitor", "model": "churn", "feature": "__all", "check": "volume_ratio"},
		{"alertname": "DriftwatchFeatureDrift", "severity": "warning", "job": "driftwatch-monitor", "model": "churn", "feature": "f3"},
		{"alertname": "TrainerWarning", "severity": "warning", "job": "driftwatch-trainer"},
	}
	want := map[string]string{ // alertname → state
		"DriftwatchServiceDown": "active", "DriftwatchIngestLag": "suppressed", "DriftwatchDataQuality": "suppressed",
		"DriftwatchFeatureDrift": "suppressed", "TrainerWarning": "active",
	}
	var post []map[string]any
	for _, l := range alerts {
		post = append(post, map[string]any{"labels": l, "startsAt": time.Now().Add(-time.Minute).Format(time.RFC3339)})
	}
	body, _ := json.Marshal(post)
	resp, err := http.Post("http://"+addr+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %s", resp.Status)
	}
	// The inhibitor learns of new alerts asynchronously: poll until the
	// states settle.
	var mismatch []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		mismatch = inhibitionMismatch(t, addr, want)
		if len(mismatch) == 0 {
			return
		}
	}
	t.Errorf("after 10s:\n%s", strings.Join(mismatch, "\n"))
}

// inhibitionMismatch returns how Alertmanager's alerts differ from want
// (alertname → state).
func inhibitionMismatch(t *testing.T, addr string, want map[string]string) []string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			State       string   `json:"state"`
			InhibitedBy []string `json:"inhibitedBy"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	var out []string
	if len(got) != len(want) {
		out = append(out, fmt.Sprintf("Alertmanager holds %d alerts, want %d", len(got), len(want)))
	}
	for _, a := range got {
		name := a.Labels["alertname"]
		if a.Status.State != want[name] {
			out = append(out, fmt.Sprintf("%s: state %s (inhibited by %v), want %s", name, a.Status.State, a.Status.InhibitedBy, want[name]))
		}
	}
	return out
}

// TestKafkaClusterIDs draws cluster ids the way scripts/kafka.sh does. One
// base64url UUID in 64 starts with '-', which kafka-storage's parser takes for
// an option; CI once failed on exactly that, so no drawn id may start with it.
func TestKafkaClusterIDs(t *testing.T) {
	const draws = 1000
	script := fmt.Sprintf(`source <(sed -n '/^random_cluster_id()/,/^}/p' ../scripts/kafka.sh)
for ((i = 0; i < %d; i++)); do random_cluster_id; done`, draws)
	ids := strings.Fields(run(t, "bash", "-c", script))
	if len(ids) != draws {
		t.Fatalf("drew %d ids, want %d", len(ids), draws)
	}
	seen := make(map[string]bool, draws)
	for _, id := range ids {
		if len(id) != 22 || strings.HasPrefix(id, "-") || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("cluster id %q: want 22 base64url characters not starting with '-'", id)
		}
		if seen[id] {
			t.Fatalf("cluster id %q drawn twice", id)
		}
		seen[id] = true
	}
}

// TestKafkaClusterConfig renders server.properties the way scripts/kafka.sh
// does, for one node and for each node of a KAFKA_BROKERS=3 cluster, and
// checks the lines that make it a cluster: node ids, each node's ports,
// the same static voter list everywhere, three replicas and two in sync.
func TestKafkaClusterConfig(t *testing.T) {
	render := func(brokers int) map[int]string {
		dir := t.TempDir()
		script := fmt.Sprintf(`set -euo pipefail
source <(sed -n '/^die()/,/^}/p;/^validate_port()/,/^}/p;/^validate_cluster()/,/^}/p;/^select_node()/,/^}/p;/^quorum_config()/,/^}/p;/^render_config()/,/^}/p' ../scripts/kafka.sh)
template=kafka/server.properties.tmpl host=127.0.0.1 port=29092 controller_port=29093 brokers=%d
ports_list= controller_ports_list= sasl_ssl_port= base_dir=%q
validate_cluster
for ((i = 1; i <= brokers; i++)); do select_node "$i"; render_config; done`, brokers, dir)
		run(t, "bash", "-c", script)
		out := map[int]string{}
		for i := 1; i <= brokers; i++ {
			p := filepath.Join(dir, "server.properties")
			if brokers > 1 {
				p = filepath.Join(dir, "node-"+strconv.Itoa(i), "server.properties")
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = string(b)
		}
		return out
	}
	has := func(t *testing.T, conf string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !slices.Contains(strings.Split(conf, "\n"), l) {
				t.Errorf("no line %q in:\n%s", l, conf)
			}
		}
	}
	t.Run("one node", func(t *testing.T) {
		conf := render(1)[1]
		has(t, conf, "node.id=1", "controller.quorum.bootstrap.servers=127.0.0.1:29093",
			"listeners=PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093",
			"default.replication.factor=1", "min.insync.replicas=1", "offsets.topic.replication.factor=1", "transaction.state.log.min.isr=1")
		if strings.Contains(conf, "controller.quorum.voters=") {
			t.Errorf("one node has a voter list:\n%s", conf)
		}
	})
	t.Run("three nodes", func(t *testing.T) {
		for i, conf := range render(3) {
			p, c := 29092+2*(i-1), 29093+2*(i-1)
			has(t, conf, "node.id="+strconv.Itoa(i),
				"controller.quorum.voters=1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097",
				fmt.Sprintf("listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", p, c),
				fmt.Sprintf("advertised.listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", p, c),
				"default.replication.factor=3", "min.insync.replicas=2", "offsets.topic.replication.factor=3",
				"transaction.state.log.replication.factor=3", "transaction.state.log.min.isr=2")
			if strings.Contains(conf, "\ncontroller.quorum.bootstrap.servers=") || strings.Contains(conf, "@KAFKA_") {
				t.Errorf("node %d:\n%s", i, conf)
			}
		}
	})
}

// TestKafkaClusterSettings: kafka.sh refuses cluster settings it cannot
// honour, naming them, and reports a cluster that is not running node by
// node (status exits 3).
func TestKafkaClusterSettings(t *testing.T) {
	tests := []struct {
		name     string
		env      []string
		wantCode int
		want     []string
	}{
		{"two brokers", []string{"KAFKA_BROKERS=2"}, 1, []string{"KAFKA_BROKERS must be 1 (one node) or 3"}},
		{"SASL on a cluster", []string{"KAFKA_BROKERS=3", "KAFKA_SASL_SSL_PORT=29999"}, 1, []string{"KAFKA_SASL_SSL_PORT works with KAFKA_BROKERS=1 only"}},
		{"too few ports", []string{"KAFKA_BROKERS=3", "KAFKA_PORTS=29001,29002"}, 1, []string{"KAFKA_PORTS must list 3 ports"}},
		{"a port twice", []string{"KAFKA_BROKERS=3", "KAFKA_PORT=29092", "KAFKA_CONTROLLER_PORT=29094"}, 1, []string{"port 29094 appears twice"}},
		{"port lists for one node", []string{"KAFKA_PORTS=29001,29002,29003"}, 1, []string{"KAFKA_PORTS and KAFKA_CONTROLLER_PORTS are for KAFKA_BROKERS=3"}},
		{"a stopped cluster", []string{"KAFKA_BROKERS=3", "KAFKA_PORTS=29001,29003,29005", "KAFKA_CONTROLLER_PORTS=29002,29004,29006"}, 3,
			[]string{"node 1: stopped", "node 2: stopped", "node 3: stopped", "/node-3)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("bash", "../scripts/kafka.sh", "status")
			// Only the case's KAFKA_* settings: `KAFKA_BROKERS=3 make test`
			// exports some of its own.
			var env []string
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "KAFKA_") {
					env = append(env, kv)
				}
			}
			cmd.Env = append(env, append(tt.env, "KAFKA_DATA_DIR="+t.TempDir())...)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d:\n%s", code, tt.wantCode, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
