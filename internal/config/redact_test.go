package config

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

func TestURLSecrets(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want []string
	}{
		{"http://u:pw1@h:8123/db", []string{"pw1"}},
		{"http://u@h:8123/db", nil},
		{"http://h:8123/db?password=pw2&x=1", []string{"pw2"}},
		{"clickhouse://u:p%40ss@a:9000,b:9000/db", []string{"p@ss"}},
		{"http://u:pw3@%zz/db?sasl_password=pw4", []string{"pw3", "pw4"}},
		{"not a url", nil},
		{"127.0.0.1:9092", nil},
	} {
		t.Run(tc.url, func(t *testing.T) {
			got := URLSecrets(tc.url)
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("URLSecrets(%q) = %q, want %q", tc.url, got, tc.want)
			}
		})
	}
}

// A configuration with secrets in every place SecretValues looks.
type secretsCfg struct {
	Common `yaml:",inline"`
	Nested struct {
		Key Secret `yaml:"key"`
	} `yaml:"nested"`
	Models map[string]struct {
		URL string `yaml:"url"`
	} `yaml:"models"`
}

func TestSecretValuesAndDump(t *testing.T) {
	cfg := &secretsCfg{Common: DefaultCommon("127.0.0.1:1")}
	cfg.ClickHouseURL = "http://u:url-pw%2F1@127.0.0.1:8123/db?password=query-pw-2"
	cfg.ClickHousePassword = "field-pw-3"
	cfg.Nested.Key = "nested-key-4"
	cfg.Models = map[string]struct {
		URL string `yaml:"url"`
	}{"m": {URL: "https://x:model-pw-5@h/"}}
	got := SecretValues(cfg)
	for _, want := range []string{"url-pw/1", "url-pw%2F1", "query-pw-2", "field-pw-3", "nested-key-4", "model-pw-5"} {
		if !slices.Contains(got, want) {
			t.Errorf("SecretValues lacks %q: %q", want, got)
		}
	}
	var out bytes.Buffer
	if err := Dump(&out, cfg); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"url-pw", "query-pw", "field-pw", "nested-key", "model-pw"} {
		if strings.Contains(out.String(), s) {
			t.Errorf("-check-config output shows %q:\n%s", s, out.String())
		}
	}
	if !strings.Contains(out.String(), "clickhouse_url: http://u:[REDACTED]@127.0.0.1:8123/db?password=[REDACTED]") {
		t.Errorf("-check-config output does not show the URL redacted:\n%s", out.String())
	}
}

func TestRedactorLogsAndErrors(t *testing.T) {
	red := RedactorOf([]string{"hunter2", "", "hunter2-long"})
	var buf bytes.Buffer
	log := slog.New(red.Handler(slog.NewTextHandler(&buf, nil))).With("url", "http://u:hunter2@h")
	base := errors.New("dial http://u:hunter2-long@h: refused")
	log.Info("connect hunter2", "err", base, slog.Group("g", "pw", "hunter2"), "n", 3)
	if s := buf.String(); strings.Contains(s, "hunter2") || !strings.Contains(s, "[REDACTED]") || !strings.Contains(s, "n=3") {
		t.Errorf("log line %q", s)
	}
	err := red.Error(base)
	if strings.Contains(err.Error(), "hunter2") || !errors.Is(err, base) {
		t.Errorf("redacted error %q (errors.Is %v)", err, errors.Is(err, base))
	}
	if got := (*Redactor)(nil).Redact("hunter2"); got != "hunter2" {
		t.Errorf("nil Redactor changed the text: %q", got)
	}
}

// TestDumpShowsEffectiveUser: -check-config of anything that embeds
// ClickHouse shows the user the clients connect as — the URL's, or
// "default" — never an empty clickhouse_user, and leaves cfg as it was.
func TestDumpShowsEffectiveUser(t *testing.T) {
	type cmd struct {
		ClickHouse `yaml:",inline"`
		Other      string `yaml:"other"`
	}
	for _, tc := range []struct{ url, user, want string }{
		{"http://127.0.0.1:8123/driftwatch", "", "clickhouse_user: default\n"},
		{"clickhouse://reader:pw@ch1:9000,ch2:9000/dw", "", "clickhouse_user: reader\n"},
		{"http://bob:pw@h:8123/x", "alice", "clickhouse_user: alice\n"},
	} {
		c := &cmd{ClickHouse: ClickHouse{ClickHouseURL: tc.url, ClickHouseUser: tc.user}}
		var b strings.Builder
		if err := Dump(&b, c); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("%s: dump lacks %q:\n%s", tc.url, tc.want, b.String())
		}
		if strings.Contains(b.String(), "pw") {
			t.Errorf("%s: dump shows the password:\n%s", tc.url, b.String())
		}
		if c.ClickHouseUser != tc.user {
			t.Errorf("Dump changed the configuration's clickhouse_user to %q", c.ClickHouseUser)
		}
	}
}
