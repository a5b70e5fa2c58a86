package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/driftwatch/driftwatch/internal/testenv"
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
	for _, name := range []string{"kafka", "clickhouse", "prometheus", "alertmanager", "ingest", "monitor", "trainer"} {
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
// defaults in DESIGN.md and that both configurations scrape the same jobs.
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
		{"alertname=FeatureDrift", "severity=warning", "model=churn"},
		{"alertname=Unclassified"},
	} {
		args := append([]string{"config", "routes", "test", "--config.file=" + alertmanagerConfig,
			"--verify.receivers=" + defaultReceiverName}, labels...)
		run(t, amtool, args...)
	}
}
