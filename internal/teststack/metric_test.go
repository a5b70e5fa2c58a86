package teststack

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMetricSum(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `# HELP driftwatch_x_total What.
# TYPE driftwatch_x_total counter
driftwatch_x_total{topic="a"} 3
driftwatch_x_total{topic="b",note="} 9"} 4.5
driftwatch_x_total_other 100
driftwatch_x 7
driftwatch_y_total 1e3
`)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for name, want := range map[string]float64{"driftwatch_x_total": 7.5, "driftwatch_x": 7, "driftwatch_y_total": 1000, "driftwatch_absent": 0} {
		got, err := MetricSum(context.Background(), addr, name)
		if err != nil || got != want {
			t.Errorf("MetricSum(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
}
