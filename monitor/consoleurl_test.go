package monitor

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestConsoleBase(t *testing.T) {
	for _, tc := range []struct{ httpAddr, consoleURL, want string }{
		{"127.0.0.1:9102", "", "http://127.0.0.1:9102"},
		{"0.0.0.0:9102", "", "http://127.0.0.1:9102"},
		{"[::]:9102", "", "http://127.0.0.1:9102"},
		{":9102", "", "http://127.0.0.1:9102"},
		{"[::1]:9102", "", "http://[::1]:9102"},
		{"monitor.internal:9102", "", "http://monitor.internal:9102"},
		{"0.0.0.0:9102", "https://driftwatch.example.org/", "https://driftwatch.example.org"},
		{"0.0.0.0:9102", "https://example.org/driftwatch", "https://example.org/driftwatch"},
	} {
		c := DefaultConfig()
		c.HTTPAddr, c.ConsoleURL = tc.httpAddr, tc.consoleURL
		if got := c.ConsoleBase(); got != tc.want {
			t.Errorf("http_addr %q, console_url %q: ConsoleBase() = %q, want %q", tc.httpAddr, tc.consoleURL, got, tc.want)
		}
	}
}

func TestConsoleURLValidate(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"", true},
		{"http://127.0.0.1:9102", true},
		{"https://example.org/driftwatch/", true},
		{"127.0.0.1:9102", false},
		{"ftp://example.org", false},
		{"http://example.org/?a=b", false},
		{"http://example.org/#x", false},
		{"http://user:pw@example.org", false},
		{"http:///path", false},
	} {
		c := DefaultConfig()
		c.ConsoleURL = tc.url
		err := c.Validate()
		if got := err == nil || !strings.Contains(err.Error(), "console_url"); got != tc.ok {
			t.Errorf("console_url %q: Validate() = %v, want ok %v", tc.url, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("console_url %q: the error %q repeats the password", tc.url, err)
		}
	}
}

func TestConsoleInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	registerConsoleInfo(reg, "http://127.0.0.1:9102")
	want := `# HELP driftwatch_console_info Always 1; url is the base URL of this monitor's web console (console_url), which alerts link to.
# TYPE driftwatch_console_info gauge
driftwatch_console_info{url="http://127.0.0.1:9102"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "driftwatch_console_info"); err != nil {
		t.Error(err)
	}
}
