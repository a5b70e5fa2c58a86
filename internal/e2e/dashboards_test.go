package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/deploy"
)

// dashboardsWait bounds how long checkDashboards waits for every query to
// have a result: the trainer's first run and the monitor's first
// performance round come a little after the drift alerts, and the
// restarted monitor evaluates the 100 junk models (which sort first)
// before model-0: 3m26s at load average 30, over 5 minutes at 45.
const dashboardsWait = 10 * time.Minute

// grafanaGlobals are what Grafana substitutes for its own variables here:
// the stack's Prometheus scrapes every second, so a minute spans enough
// samples for rate; $__range stands for the default 6h view, shortened to
// what the stack has.
var grafanaGlobals = map[string]string{"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}

var dashboardVar = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

// substitute replaces a dashboard's variables in expr with vars and
// grafanaGlobals; an unknown variable is a test failure.
func substitute(t *testing.T, where, expr string, vars map[string]string) string {
	t.Helper()
	return dashboardVar.ReplaceAllStringFunc(expr, func(m string) string {
		name := strings.Trim(m, "${}")
		if v, ok := vars[name]; ok {
			return v
		}
		if v, ok := grafanaGlobals[name]; ok {
			return v
		}
		t.Errorf("%s: no value for $%s", where, name)
		return m
	})
}

// checkDashboards runs every query of every panel of the dashboards in
// deploy/grafana against the test's Prometheus, which scrapes the real
// services, with the template variables set to vars (a model and a
// feature the data has), and requires a non-empty result of each: a
// wrong metric or label name, a label the services do not export or a
// series only some other setup would have shows up as an empty panel.
// The drill-down's variables must offer vars' values.
func checkDashboards(t *testing.T, promAddr string, vars map[string]string) {
	t.Helper()
	dashboards, err := deploy.Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	type query struct{ where, expr string }
	var queries []query
	for _, d := range dashboards {
		for _, p := range d.AllPanels() {
			for _, tg := range p.Targets {
				where := fmt.Sprintf("%s: panel %q, query %s", d.File, p.Title, tg.RefID)
				queries = append(queries, query{where, substitute(t, where, tg.Expr, vars)})
			}
		}
	}
	if len(queries) == 0 {
		t.Fatal("the dashboards hold no queries")
	}
	start, pending := time.Now(), queries
	waitFor(t, fmt.Sprintf("a result for each of the dashboards' %d queries", len(queries)), dashboardsWait, func() (bool, string) {
		var still []query
		var names []string
		for _, q := range pending {
			n, err := promQuery(promAddr, q.expr)
			if err != nil {
				t.Fatalf("%s: %s: %v", q.where, q.expr, err) // a bad query never gets better
			}
			if n == 0 {
				still = append(still, q)
				names = append(names, q.where+": "+q.expr)
			}
		}
		pending = still
		return len(pending) == 0, fmt.Sprintf("%d without a result:\n%s", len(pending), strings.Join(names, "\n"))
	})
	t.Logf("all %d dashboard queries have results (after %s)", len(queries), time.Since(start).Round(time.Second))

	// The drill-down's variables offer the model and, for it, the feature.
	for _, d := range dashboards {
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			where := d.File + ": variable " + v.Name
			metric, label, ok := labelValues(substitute(t, where, v.Definition, vars))
			if !ok {
				t.Errorf("%s: %q is not label_values(series, label)", where, v.Definition)
				continue
			}
			values, err := promLabelValues(promAddr, label, metric)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if want := vars[v.Name]; !slices.Contains(values, want) {
				t.Errorf("%s offers %v, not %s", where, values, want)
			}
		}
	}
}

var labelValuesCall = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

func labelValues(def string) (metric, label string, ok bool) {
	m := labelValuesCall.FindStringSubmatch(strings.TrimSpace(def))
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// promQuery runs an instant query and returns how many series or
// samples it answered; an error is a query Prometheus refused.
func promQuery(addr, expr string) (int, error) {
	var out struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := promGet(addr, "/api/v1/query", url.Values{"query": {expr}}, &out); err != nil {
		return 0, err
	}
	if out.Status != "success" {
		return 0, fmt.Errorf("%s: %s", out.ErrorType, out.Error)
	}
	switch out.Data.ResultType {
	case "vector", "matrix":
		var r []json.RawMessage
		if err := json.Unmarshal(out.Data.Result, &r); err != nil {
			return 0, err
		}
		return len(r), nil
	default: // scalar or string: always one value
		return 1, nil
	}
}

func promLabelValues(addr, label, match string) ([]string, error) {
	var out struct {
		Status string   `json:"status"`
		Error  string   `json:"error"`
		Data   []string `json:"data"`
	}
	if err := promGet(addr, "/api/v1/label/"+url.PathEscape(label)+"/values", url.Values{"match[]": {match}}, &out); err != nil {
		return nil, err
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("label values of %s for %s: %s", label, match, out.Error)
	}
	return out.Data, nil
}

func promGet(addr, path string, q url.Values, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := url.URL{Scheme: "http", Host: addr, Path: path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	// 400 and 422 carry the error in the JSON body.
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnprocessableEntity {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
