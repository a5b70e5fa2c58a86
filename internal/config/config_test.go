package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testConfig is what a service's configuration looks like.
type testConfig struct {
	Common    `yaml:",inline"`
	BatchRows int `yaml:"batch_rows" env:"DRIFTWATCH_BATCH_ROWS" flag:"batch-rows" help:"rows per batch"`
}

func (c *testConfig) Validate() error {
	errs := []error{c.Common.Validate()}
	if c.BatchRows < 1 {
		errs = append(errs, fmt.Errorf("batch_rows: must be at least 1, got %d", c.BatchRows))
	}
	return errors.Join(errs...)
}

func defaults() *testConfig {
	return &testConfig{Common: DefaultCommon("127.0.0.1:9101"), BatchRows: 50000}
}

func env(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

// fromGoodYAML sets what testdata/good.yaml sets, written out by hand.
func fromGoodYAML(c *testConfig) {
	c.KafkaBrokers = []string{"kafka-1:9092", "kafka-2:9092"}
	c.ClickHouseURL = "clickhouse://ch.internal:9000/driftwatch"
	c.ClickHouseUser = "ingest"
	c.ClickHousePassword = "s3cret-from-file"
	c.HTTPAddr = "0.0.0.0:9101"
	c.TopicPrefix = "prod.driftwatch."
	c.LogLevel = "debug"
	c.LogFormat = "json"
	c.ShutdownTimeout = 45 * time.Second
	c.BatchRows = 20000
}

func TestLoadPrecedence(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(c *testConfig)
	}{
		{name: "defaults", want: func(c *testConfig) {}},
		{
			name: "file",
			args: []string{"-config", "testdata/good.yaml"},
			want: fromGoodYAML,
		},
		{
			name: "config file named by environment",
			env:  map[string]string{"DRIFTWATCH_CONFIG": "testdata/good.yaml"},
			want: func(c *testConfig) {
				*c = testConfig{Common: Common{
					Kafka:      Kafka{KafkaBrokers: []string{"kafka-1:9092", "kafka-2:9092"}, TopicPrefix: "prod.driftwatch."},
					ClickHouse: ClickHouse{ClickHouseURL: "clickhouse://ch.internal:9000/driftwatch", ClickHouseUser: "ingest", ClickHousePassword: "s3cret-from-file"},
					HTTPAddr:   "0.0.0.0:9101", HTTP: DefaultHTTP(), Logging: Logging{LogLevel: "debug", LogFormat: "json"}, ShutdownTimeout: 45 * time.Second,
					APIAuth: DefaultAPIAuth(),
				}, BatchRows: 20000}
			},
		},
		{
			name: "environment beats file",
			args: []string{"-config", "testdata/good.yaml"},
			env:  map[string]string{"DRIFTWATCH_KAFKA_BROKERS": " a:1, b:2 ,", "DRIFTWATCH_BATCH_ROWS": "7", "DRIFTWATCH_CLICKHOUSE_PASSWORD": "from-env"},
			want: func(c *testConfig) {
				fromGoodYAML(c)
				c.KafkaBrokers = []string{"a:1", "b:2"}
				c.ClickHousePassword = "from-env"
				c.BatchRows = 7
			},
		},
		{
			name: "flags beat environment and file",
			args: []string{"-config", "testdata/good.yaml", "-batch-rows", "9", "-kafka-brokers=c:3", "-shutdown-timeout", "1m"},
			env:  map[string]string{"DRIFTWATCH_KAFKA_BROKERS": "a:1", "DRIFTWATCH_BATCH_ROWS": "7"},
			want: func(c *testConfig) {
				fromGoodYAML(c)
				c.KafkaBrokers = []string{"c:3"}
				c.ShutdownTimeout = time.Minute
				c.BatchRows = 9
			},
		},
		{
			name: "a list flag given twice collects both, replacing the environment's",
			args: []string{"-kafka-brokers", "c:3", "-kafka-brokers=d:4,e:5"},
			env:  map[string]string{"DRIFTWATCH_KAFKA_BROKERS": "a:1"},
			want: func(c *testConfig) { c.KafkaBrokers = []string{"c:3", "d:4", "e:5"} },
		},
		{name: "empty file changes nothing", args: []string{"-config", "testdata/empty.yaml"}, want: func(c *testConfig) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := defaults()
			if _, err := Load(got, LoadOptions{Name: "test", Args: tt.args, LookupEnv: env(tt.env)}); err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := defaults()
			tt.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // the exact error text
	}{
		{
			name: "unknown key",
			args: []string{"-config", "testdata/unknown_key.yaml"},
			want: "config file testdata/unknown_key.yaml: yaml: unmarshal errors:\n  line 2: field batch_row not found in type config.testConfig",
		},
		{
			name: "every bad value is reported at once",
			args: []string{"-config", "testdata/bad_values.yaml"},
			want: `invalid configuration:
  kafka_brokers: "kafka-1": want host:port: address kafka-1: missing port in address
  kafka_brokers: "kafka-2:port": port "port" is not a number from 1 to 65535
  topic_prefix: "bad prefix" may hold only letters, digits, '.', '_' and '-'
  clickhouse_url: scheme "postgres" is not one of clickhouse, tcp, http, https
  http_addr: "9101": not host:port
  log_level: "loud" is not one of debug, info, warn, error
  log_format: "xml" is neither text nor json
  shutdown_timeout: must be positive, got 0s
  batch_rows: must be at least 1, got -1`,
		},
		{
			name: "topic replication out of range",
			env:  map[string]string{"DRIFTWATCH_TOPIC_REPLICATION_FACTOR": "-1", "DRIFTWATCH_TOPIC_MIN_INSYNC_REPLICAS": "-2"},
			want: "invalid configuration:\n  topic_replication_factor: must be from 0 (the brokers' default) to 32, got -1\n  topic_min_insync_replicas: must be 0 (the brokers' default) or more, got -2",
		},
		{
			name: "min.insync.replicas above the replication factor",
			env:  map[string]string{"DRIFTWATCH_TOPIC_REPLICATION_FACTOR": "2", "DRIFTWATCH_TOPIC_MIN_INSYNC_REPLICAS": "3"},
			want: "invalid configuration:\n  topic_min_insync_replicas: 3 is more than topic_replication_factor 2: no acks=all write could succeed",
		},
		{
			name: "wrong type in file",
			args: []string{"-config", "testdata/wrong_type.yaml"},
			want: "config file testdata/wrong_type.yaml: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `soon` into time.Duration",
		},
		{
			name: "missing file",
			args: []string{"-config", "testdata/nope.yaml"},
			want: "read config file: open testdata/nope.yaml: no such file or directory",
		},
		{
			name: "bad environment value names the variable",
			env:  map[string]string{"DRIFTWATCH_SHUTDOWN_TIMEOUT": "10", "DRIFTWATCH_BATCH_ROWS": "many"},
			want: "environment DRIFTWATCH_SHUTDOWN_TIMEOUT: \"10\" is not a duration such as 30s or 5m\nenvironment DRIFTWATCH_BATCH_ROWS: \"many\" is not an integer",
		},
		{
			name: "bad flag value",
			args: []string{"-batch-rows", "x"},
			want: `invalid value "x" for flag -batch-rows: "x" is not an integer`,
		},
		{
			name: "unknown flag",
			args: []string{"-batch-size", "3"},
			want: "flag provided but not defined: -batch-size",
		},
		{
			name: "stray argument",
			args: []string{"run"},
			want: `unexpected arguments ["run"] (settings are flags, see -help)`,
		},
		{
			name: "password is never echoed",
			env:  map[string]string{"DRIFTWATCH_CLICKHOUSE_URL": "http://u:hunter2@%zz:8123/db"},
			want: "invalid configuration:\n  clickhouse_url: not a URL (expected clickhouse://host:9000/db or http://host:8123/db)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Load(defaults(), LoadOptions{Name: "test", Args: tt.args, LookupEnv: env(tt.env), Output: &out})
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Error("error contains the password")
			}
		})
	}
}

func TestCheckConfigRedactsSecrets(t *testing.T) {
	cfg := defaults()
	res, err := Load(cfg, LoadOptions{Name: "test", Args: []string{"-check-config", "-config", "testdata/good.yaml"}, LookupEnv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if !res.CheckOnly || res.File != "testdata/good.yaml" {
		t.Errorf("Loaded = %+v", res)
	}
	var out bytes.Buffer
	if err := Dump(&out, cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "s3cret") {
		t.Errorf("dump leaks the password:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "clickhouse_password: <redacted>") || !strings.Contains(out.String(), "batch_rows: 20000") {
		t.Errorf("dump lacks expected keys:\n%s", out.String())
	}
	for _, s := range []string{fmt.Sprint(cfg.ClickHousePassword), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(s, "s3cret") {
			t.Errorf("formatting leaks the password: %s", s)
		}
	}
}

func TestHelpListsEveryFlagWithItsVariable(t *testing.T) {
	var out bytes.Buffer
	_, err := Load(defaults(), LoadOptions{Name: "test", Args: []string{"-help"}, Output: &out, LookupEnv: env(nil), Usage: "test does things."})
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v, want ErrHelp", err)
	}
	for _, want := range []string{"test does things.", "-kafka-brokers", "[DRIFTWATCH_KAFKA_BROKERS]", "-batch-rows", "[DRIFTWATCH_BATCH_ROWS]", "-check-config", "-config file", "(default 127.0.0.1:9092)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}

// TestKafkaBrokers: -check-config refuses every address the Kafka clients
// would refuse (it accepted ":9092" and port 0 before both used CheckBroker).
func TestKafkaBrokers(t *testing.T) {
	tests := []struct {
		broker  string
		wantErr string
	}{
		{"kafka-1:9092", ""},
		{"127.0.0.1:29092", ""},
		{"[::1]:9092", ""},
		{":9092", "missing host"},
		{"kafka-1:0", "from 1 to 65535"},
		{"kafka-1:65536", "from 1 to 65535"},
		{"kafka://kafka-1:9092", "without a scheme"},
		{"kafka-1", "want host:port"},
		{"", "empty entry"},
	}
	for _, tt := range tests {
		t.Run(tt.broker, func(t *testing.T) {
			k := Kafka{KafkaBrokers: []string{tt.broker}, TopicPrefix: "driftwatch."}
			err := k.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Validate: %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "kafka_brokers") {
				t.Errorf("Validate: %v, want kafka_brokers: … %s", err, tt.wantErr)
			}
		})
	}
}

// TestHTTPValidate: a timeout that is not positive, or a header timeout
// longer than the whole-request timeout, is named by its key.
func TestHTTPValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*HTTP)
		want string
	}{
		{"defaults", func(*HTTP) {}, ""},
		{"zero write timeout", func(h *HTTP) { h.HTTPWriteTimeout = 0 }, "http_write_timeout: must be positive, got 0s"},
		{"negative idle timeout", func(h *HTTP) { h.HTTPIdleTimeout = -time.Second }, "http_idle_timeout: must be positive, got -1s"},
		{"header longer than request", func(h *HTTP) { h.HTTPReadHeaderTimeout = time.Minute },
			"http_read_header_timeout: 1m0s is longer than http_read_timeout 30s, which includes the headers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := DefaultHTTP()
			tc.mod(&h)
			err := h.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && err.Error() != tc.want) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestClickHouseTLSValidate(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(pem, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		c    ClickHouse
		want []string
	}{
		{"https with CA", ClickHouse{ClickHouseURL: "https://h:8443/db", ClickHouseTLSCAFile: pem}, nil},
		{"native secure with client cert", ClickHouse{ClickHouseURL: "clickhouse://h/db?secure=true", ClickHouseTLSCertFile: pem, ClickHouseTLSKeyFile: pem}, nil},
		{"http with CA", ClickHouse{ClickHouseURL: "http://h/db", ClickHouseTLSCAFile: pem}, []string{"clickhouse_url: the clickhouse_tls_* files are set but the URL does not use TLS"}},
		{"missing file", ClickHouse{ClickHouseURL: "https://h/db", ClickHouseTLSCAFile: filepath.Join(dir, "no.pem")}, []string{"clickhouse_tls_ca_file: stat"}},
		{"cert without key", ClickHouse{ClickHouseURL: "https://h/db", ClickHouseTLSCertFile: pem}, []string{"clickhouse_tls_cert_file: the client certificate and clickhouse_tls_key_file go together"}},
		{"directory", ClickHouse{ClickHouseURL: "https://h/db", ClickHouseTLSKeyFile: dir, ClickHouseTLSCertFile: pem}, []string{"clickhouse_tls_key_file: " + dir + " is a directory"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}
