package docs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/ingest"
	"github.com/driftwatch/driftwatch/internal/chserver"
	"github.com/driftwatch/driftwatch/internal/service"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/internal/teststack"
	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/retrain"
	"github.com/driftwatch/driftwatch/retrain/serve"
)

// metric is one metric a service registers, as its descriptor says.
type metric struct {
	name, help string
	labels     []string
	services   []string
}

var (
	descName   = regexp.MustCompile(`fqName: "([^"]*)"`)
	descHelp   = regexp.MustCompile(`help: "((?:[^"\\]|\\.)*)"`)
	descLabels = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
)

// registered runs each service against the real Kafka and ClickHouse with
// a registry of the test's until it is ready, and returns every driftwatch
// metric the registry describes — registered, whether or not it has a
// series yet — with the services that register it.
func registered(t *testing.T) map[string]*metric {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	_, db := testdb.Open(t, "docsmetrics")
	url := testdb.URL(t, db)
	out := map[string]*metric{}
	type svc struct {
		name string
		run  func(ctx context.Context, addr string) error
	}
	for _, s := range []svc{
		{"ingest", func(ctx context.Context, addr string) error {
			c := ingest.DefaultConfig()
			c.KafkaBrokers, c.ClickHouseURL, c.HTTPAddr, c.TopicPrefix = brokers, url, addr, "docs-"+db+"."
			return ingest.RunService(ctx, c)
		}},
		{"monitor", func(ctx context.Context, addr string) error {
			c := monitor.DefaultConfig()
			c.KafkaBrokers, c.ClickHouseURL, c.HTTPAddr, c.TopicPrefix = brokers, url, addr, "docs-"+db+"."
			return monitor.RunService(ctx, c)
		}},
		{"trainer", func(ctx context.Context, addr string) error {
			c := retrain.DefaultConfig()
			c.KafkaBrokers, c.ClickHouseURL, c.HTTPAddr, c.TopicPrefix = brokers, url, addr, "docs-"+db+"."
			c.DataDir = t.TempDir()
			return retrain.RunService(ctx, c)
		}},
		{"serve", func(ctx context.Context, addr string) error {
			c := serve.DefaultConfig()
			c.KafkaBrokers, c.ClickHouseURL, c.HTTPAddr, c.TopicPrefix = brokers, url, addr, "docs-"+db+"."
			return serve.RunService(ctx, c)
		}},
	} {
		reg := prometheus.NewRegistry()
		addr := "127.0.0.1:" + strconv.Itoa(teststack.FreePort(t))
		ctx, cancel := context.WithCancel(service.WithRegistry(context.Background(), reg))
		done := make(chan error, 1)
		go func() { done <- s.run(ctx, addr) }()
		ready := waitReady(addr, done)
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: %v", s.name, err)
		}
		if ready != nil {
			t.Fatalf("%s: %v", s.name, ready)
		}
		describe(reg, s.name, out)
	}
	// The embedded ClickHouse server registers its metrics when it is
	// built (services/clickhouse-embedded does the same with its registry).
	reg := prometheus.NewRegistry()
	if _, err := chserver.New(chserver.Options{Addr: "127.0.0.1:0", LibPath: "not loaded by New", User: "default", Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	describe(reg, "clickhouse-embedded", out)
	return out
}

// describe adds every driftwatch metric reg describes to out, as
// registered by service.
func describe(reg *prometheus.Registry, service string, out map[string]*metric) {
	descs := make(chan *prometheus.Desc, 1000)
	go func() { reg.Describe(descs); close(descs) }()
	for d := range descs {
		str := d.String()
		m := descName.FindStringSubmatch(str)
		if m == nil || !strings.HasPrefix(m[1], "driftwatch_") {
			continue // the Go runtime's and the process's collectors
		}
		e := out[m[1]]
		if e == nil {
			e = &metric{name: m[1]}
			if h := descHelp.FindStringSubmatch(str); h != nil {
				e.help, _ = strconv.Unquote(`"` + h[1] + `"`)
			}
			if l := descLabels.FindStringSubmatch(str); l != nil && strings.TrimSpace(l[1]) != "" {
				for _, x := range strings.Split(l[1], ",") {
					e.labels = append(e.labels, strings.TrimSpace(x))
				}
			}
			out[m[1]] = e
		}
		if len(e.services) == 0 || e.services[len(e.services)-1] != service {
			e.services = append(e.services, service)
		}
	}
}

// waitReady polls addr's /readyz until it answers 200, the service ends or
// a minute passed.
func waitReady(addr string, done chan error) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("ended before it was ready: %v", err)
		default:
		}
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("not ready within a minute")
}

// TestMetricsReference: docs/metrics.md lists every metric each service
// registers (read from the running services' registries against the real
// Kafka and ClickHouse, so a metric registered later is listed too); `go
// test ./services/docs -run TestMetricsReference -update` rewrites its
// generated table, keeping the text above it.
func TestMetricsReference(t *testing.T) {
	ms := registered(t)
	if len(ms) == 0 {
		t.Fatal("the services registered no driftwatch metric")
	}
	names := make([]string, 0, len(ms))
	for n := range ms {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(metricsBegin + "\n| metric | labels | services | meaning |\n|---|---|---|---|\n")
	for _, n := range names {
		m := ms[n]
		labels := make([]string, len(m.labels))
		for i, l := range m.labels {
			labels[i] = "`" + l + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", n, strings.Join(labels, ", "), strings.Join(m.services, ", "), escape(m.help))
	}
	b.WriteString(metricsEnd + "\n")
	path := filepath.Join(root(t), "docs", "metrics.md")
	old, err := os.ReadFile(path)
	if err != nil && !*update {
		t.Fatal(err)
	}
	page := string(old)
	i, j := strings.Index(page, metricsBegin), strings.Index(page, metricsEnd)
	if i < 0 || j < i {
		if !*update {
			t.Fatalf("docs/metrics.md lacks the %s … %s markers", metricsBegin, metricsEnd)
		}
		page += "\n" + metricsBegin + "\n" + metricsEnd + "\n"
		i, j = strings.Index(page, metricsBegin), strings.Index(page, metricsEnd)
	}
	got := page[:i] + b.String() + strings.TrimPrefix(page[j+len(metricsEnd):], "\n")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != page {
		for _, n := range names {
			if !strings.Contains(page, "| `"+n+"` |") {
				t.Errorf("docs/metrics.md does not list %s (registered by %s)", n, strings.Join(ms[n].services, ", "))
			}
		}
		t.Errorf("docs/metrics.md's table is not what the services register; run go test ./services/docs -run TestMetricsReference -update and commit it. First difference: %s", firstDiff(page, got))
	}
}

const (
	metricsBegin = "<!-- generated by TestMetricsReference: begin -->"
	metricsEnd   = "<!-- generated by TestMetricsReference: end -->"
)
