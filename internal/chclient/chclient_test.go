package chclient

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/testenv"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		want    Target
		wantErr string
	}{
		{name: "native with defaults", cfg: Config{URL: "clickhouse://ch"},
			want: Target{Protocol: clickhouse.Native, Addrs: []string{"ch:9000"}, Database: "default", User: "default"}},
		{name: "http with database and credentials", cfg: Config{URL: "http://alice:pw@127.0.0.1:8123/driftwatch"},
			want: Target{Protocol: clickhouse.HTTP, Addrs: []string{"127.0.0.1:8123"}, Database: "driftwatch", User: "alice", Password: "pw"}},
		{name: "password as a query parameter", cfg: Config{URL: "http://alice@127.0.0.1:8123/driftwatch?password=qpw"},
			want: Target{Protocol: clickhouse.HTTP, Addrs: []string{"127.0.0.1:8123"}, Database: "driftwatch", User: "alice", Password: "qpw"}},
		{name: "https default port", cfg: Config{URL: "https://ch.example/db"},
			want: Target{Protocol: clickhouse.HTTP, Secure: true, Addrs: []string{"ch.example:8443"}, Database: "db", User: "default"}},
		{name: "host list and tcp scheme", cfg: Config{URL: "tcp://a:9440,b/db"},
			want: Target{Protocol: clickhouse.Native, Addrs: []string{"a:9440", "b:9000"}, Database: "db", User: "default"}},
		{name: "separate credentials win", cfg: Config{URL: "http://alice:pw@h/db", User: "bob", Password: "other"},
			want: Target{Protocol: clickhouse.HTTP, Addrs: []string{"h:8123"}, Database: "db", User: "bob", Password: "other"}},
		{name: "bad scheme", cfg: Config{URL: "postgres://u:secret@h/db"}, wantErr: `parse ClickHouse URL postgres://u:xxxxx@h/db: scheme "postgres" is not one of clickhouse, tcp, http, https`},
		{name: "no host", cfg: Config{URL: "http:///db"}, wantErr: "parse ClickHouse URL http:///db: host is missing"},
		{name: "nested path", cfg: Config{URL: "http://h/a/b"}, wantErr: "parse ClickHouse URL http://h/a/b: path must be a single database name"},
		{name: "bad host keeps the password out", cfg: Config{URL: "http://u:secret@%zz/db"}, wantErr: `parse ClickHouse URL http://u:xxxxx@%zz/db: "%zz:8123" is not host:port`},
		{name: "bad port", cfg: Config{URL: "http://h:99999/db"}, wantErr: `parse ClickHouse URL http://h:99999/db: "h:99999" is not host:port`},
		{name: "empty", cfg: Config{}, wantErr: "parse ClickHouse URL: expected clickhouse://host:9000/db or http://host:8123/db"},
		{name: "native TLS", cfg: Config{URL: "clickhouse://ch/db?secure=true", TLS: TLSFiles{CAFile: "ca.pem"}},
			want: Target{Protocol: clickhouse.Native, Secure: true, Addrs: []string{"ch:9440"}, Database: "db", User: "default"}},
		{name: "TLS files without TLS", cfg: Config{URL: "http://u:secret@h/db", TLS: TLSFiles{CAFile: "ca.pem"}},
			wantErr: "parse ClickHouse URL http://u:xxxxx@h/db: TLS files are set but the URL does not ask for TLS (use https://, or clickhouse://…?secure=true)"},
		{name: "secure contradicts http", cfg: Config{URL: "http://h/db?secure=true"},
			wantErr: "parse ClickHouse URL http://h/db?secure=true: secure=true contradicts scheme http (use https:// for TLS over HTTP)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"http://u:secret@h:8123/db":       "http://u:xxxxx@h:8123/db",
		"clickhouse://u@h/db":             "clickhouse://u@h/db",
		"http://h/db":                     "http://h/db",
		"http://u:secret@%zz/db":          "http://u:xxxxx@%zz/db",
		"http://u:secret@a:1,b:2/x":       "http://u:xxxxx@a:1,b:2/x",
		"garbage%zz":                      "<unparseable>",
		"http://h/db?password=secret&x=1": "http://h/db?password=xxxxx&x=1",
		"http://h/db?x=1&b=2":             "http://h/db?x=1&b=2",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOpenAgainstServer connects to the ClickHouse the environment names
// (the embedded server under `make test`), creates a database and reads
// an error code back.
func TestOpenAgainstServer(t *testing.T) {
	base := testenv.ClickHouseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := "chclient_test_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "_")
	u := strings.TrimRight(base[:strings.LastIndex(base, "/")+1], "/") + "/" + db
	if strings.Count(base, "/") < 3 {
		u = strings.TrimRight(base, "/") + "/" + db
	}
	conn, err := Open(ctx, Config{URL: u}, true)
	if err != nil {
		t.Fatalf("Open(%s): %v", Redact(u), err)
	}
	defer conn.Close()
	defer conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+chsql.Ident(db))
	var got string
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != db {
		t.Errorf("currentDatabase() = %q, want %q", got, db)
	}
	err = conn.Exec(ctx, "SELECT * FROM no_such_table_here")
	if code := Code(err); code != 60 { // UNKNOWN_TABLE
		t.Errorf("Code(%v) = %d, want 60", err, code)
	}
}

func TestTLSFilesConfig(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		files   TLSFiles
		wantErr string
	}{
		{"none: system roots", TLSFiles{}, ""},
		{"missing CA file", TLSFiles{CAFile: filepath.Join(dir, "nope.pem")}, "read ClickHouse TLS CA file"},
		{"CA file without PEM", TLSFiles{CAFile: junk}, "holds no PEM certificate"},
		{"cert without key", TLSFiles{CertFile: junk}, "set both the cert file and the key file"},
		{"bad key pair", TLSFiles{CertFile: junk, KeyFile: junk}, "load ClickHouse TLS client certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.files.Config()
			if tt.wantErr == "" {
				if err != nil || c.MinVersion != tls.VersionTLS12 {
					t.Fatalf("Config() = %v, %v", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestEffectiveUserAgrees: the user -check-config prints
// (config.ClickHouse.EffectiveUser) is the one the clients connect as.
func TestEffectiveUserAgrees(t *testing.T) {
	for _, c := range []config.ClickHouse{
		{ClickHouseURL: "http://127.0.0.1:8123/driftwatch"},
		{ClickHouseURL: "http://bob:pw@127.0.0.1:8123/driftwatch"},
		{ClickHouseURL: "clickhouse://reader@ch1:9000,ch2:9000/dw"},
		{ClickHouseURL: "clickhouse://a%40b:pw@ch1:9000/dw"},
		{ClickHouseURL: "http://bob:pw@127.0.0.1:8123/driftwatch", ClickHouseUser: "alice"},
		{ClickHouseURL: "https://:pw@ch:8443/dw"},
	} {
		tg, err := Parse(FromConfig(c))
		if err != nil {
			t.Fatalf("%s: %v", c.ClickHouseURL, err)
		}
		if got := c.EffectiveUser(); got != tg.User {
			t.Errorf("%s (clickhouse_user %q): -check-config says user %q, the clients connect as %q", Redact(c.ClickHouseURL), c.ClickHouseUser, got, tg.User)
		}
	}
}
