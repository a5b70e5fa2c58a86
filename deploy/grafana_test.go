package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const (
	grafanaDatasources = "grafana/provisioning/datasources/prometheus.yml"
	grafanaProviders   = "grafana/provisioning/dashboards/driftwatch.yml"
)

// grafanaGlobals are the variables Grafana itself defines.
var grafanaGlobals = []string{"__rate_interval", "__interval", "__range"}

var (
	varRef     = regexp.MustCompile(`\$\{?(\w+)`)
	metricName = regexp.MustCompile(`\bdriftwatch_[a-z_]+\b`)
	// registered finds metric names in Go string literals.
	registered = regexp.MustCompile(`"(driftwatch_[a-z_]+)"`)
)

// TestGrafanaDashboards checks what Grafana would only show as empty or
// broken panels: every dashboard parses and has a unique uid and title,
// every panel and query names the datasource variable, every query has an
// expression whose variables are defined, and every driftwatch metric it
// reads is one a service registers. TestDriftAlertReachesAlertmanager in
// internal/e2e runs every expression against the real Prometheus.
func TestGrafanaDashboards(t *testing.T) {
	ds, err := Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, d := range ds {
		files = append(files, d.File)
	}
	if want := []string{"fleet.json", "model.json", "pipeline.json"}; !slices.Equal(files, want) {
		t.Errorf("dashboards %v, want %v", files, want)
	}
	metrics := registeredMetrics(t)
	uids, titles := map[string]string{}, map[string]string{}
	for _, d := range ds {
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid %q, title %q: both are required", d.File, d.UID, d.Title)
		}
		if f, ok := uids[d.UID]; ok {
			t.Errorf("%s: uid %q is also %s's", d.File, d.UID, f)
		}
		if f, ok := titles[d.Title]; ok {
			t.Errorf("%s: title %q is also %s's", d.File, d.Title, f)
		}
		uids[d.UID], titles[d.Title] = d.File, d.File
		vars := slices.Clone(grafanaGlobals)
		for _, v := range d.Templating.List {
			vars = append(vars, v.Name)
		}
		if !slices.ContainsFunc(d.Templating.List, func(v Variable) bool { return v.Name == "datasource" && v.Type == "datasource" }) {
			t.Errorf("%s: no datasource variable", d.File)
		}
		for _, l := range d.Links {
			for _, m := range varRef.FindAllStringSubmatch(l.URL, -1) {
				if !slices.Contains(vars, m[1]) {
					t.Errorf("%s: link %q uses $%s, which is not a variable of the dashboard", d.File, l.Title, m[1])
				}
			}
		}
		panels := d.AllPanels()
		if len(panels) == 0 {
			t.Errorf("%s: no panels", d.File)
		}
		ids := map[int]bool{}
		for _, p := range d.Panels {
			ids[p.ID] = true // rows too
		}
		if len(ids) != len(d.Panels) {
			t.Errorf("%s: panel ids are not unique", d.File)
		}
		for _, p := range panels {
			where := d.File + ": panel " + p.Title
			if p.Title == "" {
				t.Errorf("%s: panel %d has no title", d.File, p.ID)
			}
			if !isDatasourceVar(p.Datasource) {
				t.Errorf("%s: datasource %+v, want prometheus ${datasource}", where, p.Datasource)
			}
			if x, w := p.GridPos["x"], p.GridPos["w"]; w <= 0 || x+w > 24 || p.GridPos["h"] <= 0 {
				t.Errorf("%s: gridPos %v does not fit the 24 columns", where, p.GridPos)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no queries", where)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s, query %s: no expr", where, tg.RefID)
				}
				if !isDatasourceVar(tg.Datasource) {
					t.Errorf("%s, query %s: datasource %+v, want prometheus ${datasource}", where, tg.RefID, tg.Datasource)
				}
				for _, m := range varRef.FindAllStringSubmatch(tg.Expr, -1) {
					if !slices.Contains(vars, m[1]) {
						t.Errorf("%s, query %s: $%s is not a variable of the dashboard", where, tg.RefID, m[1])
					}
				}
				for _, m := range metricName.FindAllString(tg.Expr, -1) {
					if !metrics[strings.TrimSuffix(m, "_bucket")] {
						t.Errorf("%s, query %s: %s is not a metric any service registers", where, tg.RefID, m)
					}
				}
			}
		}
	}
	// The drill-down chooses its model and feature from what the monitor
	// exports.
	for _, d := range ds {
		if d.File != "model.json" {
			continue
		}
		for _, name := range []string{"model", "feature"} {
			i := slices.IndexFunc(d.Templating.List, func(v Variable) bool { return v.Name == name })
			if i < 0 {
				t.Errorf("model.json: no variable %s", name)
				continue
			}
			if v := d.Templating.List[i]; v.Type != "query" || !strings.HasPrefix(v.Definition, "label_values(") || !strings.HasSuffix(v.Definition, ", "+name+")") {
				t.Errorf("model.json: variable %s is %s %q, want a label_values(…, %s) query", name, v.Type, v.Definition, name)
			}
		}
	}
}

func isDatasourceVar(d *DatasourceRef) bool {
	return d != nil && d.Type == "prometheus" && d.UID == "${datasource}"
}

// registeredMetrics returns the metric names in the services' Go sources
// (outside tests): every name a dashboard may read.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, dir := range []string{"../ingest", "../monitor", "../retrain", "../internal/service"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s: %v", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range registered.FindAllStringSubmatch(string(b), -1) {
				out[m[1]] = true
			}
		}
	}
	if !out["driftwatch_drift_score"] || !out["driftwatch_ingest_consumer_lag"] || !out["driftwatch_trainer_runs_total"] {
		t.Fatalf("found only %d metric names in the services' sources: the pattern no longer matches how they register them", len(out))
	}
	return out
}

// TestGrafanaProvisioning checks the provisioning files against
// docker-compose.yml: the dashboards provider reads the folder compose
// mounts the dashboards at, and the data source is Prometheus, the default.
func TestGrafanaProvisioning(t *testing.T) {
	var providers struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name    string `yaml:"name"`
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, grafanaProviders, &providers)
	var sources struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string `yaml:"name"`
			Type      string `yaml:"type"`
			URL       string `yaml:"url"`
			IsDefault bool   `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	readYAML(t, grafanaDatasources, &sources)
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Volumes     []string          `yaml:"volumes"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	readYAML(t, composeFile, &compose)
	g, ok := compose.Services["grafana"]
	if !ok {
		t.Fatalf("%s has no grafana service", composeFile)
	}
	mounts := map[string]string{} // target → source
	for _, v := range g.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			mounts[parts[1]] = parts[0]
		}
	}
	if src := mounts["/etc/grafana/provisioning"]; src != "./deploy/grafana/provisioning" {
		t.Errorf("grafana mounts %q at /etc/grafana/provisioning, want ./deploy/grafana/provisioning", src)
	}
	if providers.APIVersion != 1 || len(providers.Providers) != 1 || providers.Providers[0].Type != "file" {
		t.Fatalf("%s: want apiVersion 1 and one file provider, got %+v", grafanaProviders, providers)
	}
	if p := providers.Providers[0].Options.Path; mounts[p] != "./deploy/grafana/dashboards" {
		t.Errorf("%s reads %s, where compose mounts %q, not ./deploy/grafana/dashboards", grafanaProviders, p, mounts[p])
	}
	if sources.APIVersion != 1 || len(sources.Datasources) != 1 || sources.Datasources[0].Type != "prometheus" || !sources.Datasources[0].IsDefault {
		t.Fatalf("%s: want apiVersion 1 and one default prometheus data source, got %+v", grafanaDatasources, sources)
	}
	if u := sources.Datasources[0].URL; u != "${PROMETHEUS_URL}" || g.Environment["PROMETHEUS_URL"] != "http://prometheus:9090" {
		t.Errorf("the data source's url is %q with PROMETHEUS_URL %q in compose; want ${PROMETHEUS_URL} set to http://prometheus:9090", u, g.Environment["PROMETHEUS_URL"])
	}
	// The home dashboard compose sets is one of the files.
	if home := g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		if _, err := os.Stat(filepath.Join("grafana/dashboards", filepath.Base(home))); err != nil || filepath.Dir(home) != providers.Providers[0].Options.Path {
			t.Errorf("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH %s is not a provisioned dashboard: %v", home, err)
		}
	}
	// Every dashboard file is JSON Grafana can load as a whole (Dashboards
	// reads only some fields).
	for _, f := range glob(t, "grafana/dashboards/*.json") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
