package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Kafka says where the Kafka cluster is and how topics are named.
type Kafka struct {
	KafkaBrokers []string `yaml:"kafka_brokers" env:"DRIFTWATCH_KAFKA_BROKERS" flag:"kafka-brokers" help:"Kafka bootstrap brokers, comma-separated host:port"`
	TopicPrefix  string   `yaml:"topic_prefix" env:"DRIFTWATCH_TOPIC_PREFIX" flag:"topic-prefix" help:"prefix of every Kafka topic name"`
	// The replication of the topics driftwatch creates (an existing topic
	// is left as it is); 0 takes the brokers' default.replication.factor
	// and min.insync.replicas, which scripts/kafka.sh sets to 3 and 2 for
	// a three-node cluster.
	TopicReplicationFactor int `yaml:"topic_replication_factor" env:"DRIFTWATCH_TOPIC_REPLICATION_FACTOR" flag:"topic-replication-factor" help:"replicas of each partition of the topics driftwatch creates; 0 for the brokers' default.replication.factor"`
	TopicMinInsyncReplicas int `yaml:"topic_min_insync_replicas" env:"DRIFTWATCH_TOPIC_MIN_INSYNC_REPLICAS" flag:"topic-min-insync-replicas" help:"min.insync.replicas of the topics driftwatch creates (replicas an acks=all write needs); 0 for the brokers' default"`
	// SASL and TLS (see kafka_security.go and docs/security-kafka.md).
	KafkaSASLMechanism         string `yaml:"kafka_sasl_mechanism" env:"DRIFTWATCH_KAFKA_SASL_MECHANISM" flag:"kafka-sasl-mechanism" help:"Kafka SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty for none"`
	KafkaSASLUsername          string `yaml:"kafka_sasl_username" env:"DRIFTWATCH_KAFKA_SASL_USERNAME" flag:"kafka-sasl-username" help:"Kafka SASL user name"`
	KafkaSASLPassword          Secret `yaml:"kafka_sasl_password" env:"DRIFTWATCH_KAFKA_SASL_PASSWORD" flag:"kafka-sasl-password" help:"Kafka SASL password (prefer kafka_sasl_password_file or the environment, flags show in ps)"`
	KafkaSASLPasswordFile      string `yaml:"kafka_sasl_password_file" env:"DRIFTWATCH_KAFKA_SASL_PASSWORD_FILE" flag:"kafka-sasl-password-file" help:"file holding the Kafka SASL password (one line; a trailing newline is dropped)"`
	KafkaTLS                   bool   `yaml:"kafka_tls" env:"DRIFTWATCH_KAFKA_TLS" flag:"kafka-tls" help:"connect to the Kafka brokers over TLS"`
	KafkaTLSCAFile             string `yaml:"kafka_tls_ca_file" env:"DRIFTWATCH_KAFKA_TLS_CA_FILE" flag:"kafka-tls-ca-file" help:"PEM file of the CA certificates that sign the brokers' certificates; empty for the system roots"`
	KafkaTLSCertFile           string `yaml:"kafka_tls_cert_file" env:"DRIFTWATCH_KAFKA_TLS_CERT_FILE" flag:"kafka-tls-cert-file" help:"PEM client certificate for Kafka (with kafka_tls_key_file)"`
	KafkaTLSKeyFile            string `yaml:"kafka_tls_key_file" env:"DRIFTWATCH_KAFKA_TLS_KEY_FILE" flag:"kafka-tls-key-file" help:"PEM private key of kafka_tls_cert_file"`
	KafkaTLSServerName         string `yaml:"kafka_tls_server_name" env:"DRIFTWATCH_KAFKA_TLS_SERVER_NAME" flag:"kafka-tls-server-name" help:"name the brokers' certificates are checked against; empty for each broker's host"`
	KafkaTLSInsecureSkipVerify bool   `yaml:"kafka_tls_insecure_skip_verify" env:"DRIFTWATCH_KAFKA_TLS_INSECURE_SKIP_VERIFY" flag:"kafka-tls-insecure-skip-verify" help:"do not verify the brokers' certificates (testing only: anyone on the path can read and change the traffic)"`
}

// ClickHouse says where ClickHouse is and who to connect as.
type ClickHouse struct {
	ClickHouseURL      string `yaml:"clickhouse_url" env:"DRIFTWATCH_CLICKHOUSE_URL" flag:"clickhouse-url" help:"ClickHouse URL: clickhouse://host:9000/db (native; ?secure=true for TLS) or http(s)://host:8123/db"`
	ClickHouseUser     string `yaml:"clickhouse_user" env:"DRIFTWATCH_CLICKHOUSE_USER" flag:"clickhouse-user" help:"ClickHouse user (overrides the URL's)"`
	ClickHousePassword Secret `yaml:"clickhouse_password" env:"DRIFTWATCH_CLICKHOUSE_PASSWORD" flag:"clickhouse-password" help:"ClickHouse password (overrides the URL's; prefer the environment, flags show in ps)"`
	// The TLS files apply to an https:// URL or a native one with
	// ?secure=true; without a CA file the system roots verify the server.
	ClickHouseTLSCAFile   string `yaml:"clickhouse_tls_ca_file" env:"DRIFTWATCH_CLICKHOUSE_TLS_CA_FILE" flag:"clickhouse-tls-ca-file" help:"PEM file of the CA(s) that sign ClickHouse's TLS certificate (default: the system roots)"`
	ClickHouseTLSCertFile string `yaml:"clickhouse_tls_cert_file" env:"DRIFTWATCH_CLICKHOUSE_TLS_CERT_FILE" flag:"clickhouse-tls-cert-file" help:"PEM client certificate presented to ClickHouse (with clickhouse_tls_key_file)"`
	ClickHouseTLSKeyFile  string `yaml:"clickhouse_tls_key_file" env:"DRIFTWATCH_CLICKHOUSE_TLS_KEY_FILE" flag:"clickhouse-tls-key-file" help:"PEM private key of clickhouse_tls_cert_file"`
}

// EffectiveUser is the ClickHouse user the clients connect as: clickhouse_user when
// set, else the user name of the URL's userinfo, else "default" (what
// chclient does with the same settings).
func (c ClickHouse) EffectiveUser() string {
	if c.ClickHouseUser != "" {
		return c.ClickHouseUser
	}
	if u := URLUser(c.ClickHouseURL); u != "" {
		return u
	}
	return "default"
}

// Logging chooses the log level and format.
type Logging struct {
	LogLevel  string `yaml:"log_level" env:"DRIFTWATCH_LOG_LEVEL" flag:"log-level" help:"log level: debug, info, warn or error"`
	LogFormat string `yaml:"log_format" env:"DRIFTWATCH_LOG_FORMAT" flag:"log-format" help:"log format: text or json"`
}

// HTTP bounds what a client of a service's HTTP server (health, readiness,
// /metrics, the API) may hold: a connection that sends its request slowly,
// or reads its answer slowly, or sits idle, is closed. WriteTimeout must be
// longer than the longest query an API handler runs (the monitor's
// api_query_timeout), or an answer is cut off while it is still computed.
type HTTP struct {
	HTTPReadHeaderTimeout time.Duration `yaml:"http_read_header_timeout" env:"DRIFTWATCH_HTTP_READ_HEADER_TIMEOUT" flag:"http-read-header-timeout" help:"longest a client may take to send a request's headers"`
	HTTPReadTimeout       time.Duration `yaml:"http_read_timeout" env:"DRIFTWATCH_HTTP_READ_TIMEOUT" flag:"http-read-timeout" help:"longest a client may take to send a whole request, body included"`
	HTTPWriteTimeout      time.Duration `yaml:"http_write_timeout" env:"DRIFTWATCH_HTTP_WRITE_TIMEOUT" flag:"http-write-timeout" help:"longest from the end of a request's headers to the end of its answer; longer than any API query"`
	HTTPIdleTimeout       time.Duration `yaml:"http_idle_timeout" env:"DRIFTWATCH_HTTP_IDLE_TIMEOUT" flag:"http-idle-timeout" help:"how long a keep-alive connection may wait for its next request"`
}

// DefaultHTTP returns the HTTP server's timeouts: 10 s for the headers,
// 30 s for the whole request, 60 s for the answer (twice the monitor's
// default api_query_timeout), 120 s idle.
func DefaultHTTP() HTTP {
	return HTTP{HTTPReadHeaderTimeout: 10 * time.Second, HTTPReadTimeout: 30 * time.Second, HTTPWriteTimeout: 60 * time.Second, HTTPIdleTimeout: 120 * time.Second}
}

// Validate reports every timeout that is not positive, or a read-header
// timeout longer than the read timeout it is part of.
func (h *HTTP) Validate() error {
	var p problems
	for _, f := range []struct {
		key string
		d   time.Duration
	}{{"http_read_header_timeout", h.HTTPReadHeaderTimeout}, {"http_read_timeout", h.HTTPReadTimeout}, {"http_write_timeout", h.HTTPWriteTimeout}, {"http_idle_timeout", h.HTTPIdleTimeout}} {
		if f.d <= 0 {
			p.add(f.key, "must be positive, got %s", f.d)
		}
	}
	if h.HTTPReadHeaderTimeout > h.HTTPReadTimeout && h.HTTPReadTimeout > 0 {
		p.add("http_read_header_timeout", "%s is longer than http_read_timeout %s, which includes the headers", h.HTTPReadHeaderTimeout, h.HTTPReadTimeout)
	}
	return errors.Join(p...)
}

// Common holds the settings every driftwatch service shares; services embed
// it with `yaml:",inline"`. The environment names are the contract in
// docs/architecture.md. Commands that need only some of them (a CLI command that
// talks to Kafka alone) embed the parts: Kafka, ClickHouse, Logging.
type Common struct {
	Kafka           `yaml:",inline"`
	ClickHouse      `yaml:",inline"`
	HTTPAddr        string `yaml:"http_addr" env:"DRIFTWATCH_HTTP_ADDR" flag:"http-addr" help:"listen address for /healthz, /readyz, /metrics and the API"`
	HTTP            `yaml:",inline"`
	Logging         `yaml:",inline"`
	APIAuth         `yaml:",inline"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"DRIFTWATCH_SHUTDOWN_TIMEOUT" flag:"shutdown-timeout" help:"how long a graceful shutdown (flush, commit, close) may take"`
}

// ResolvedCommon returns c as it will be used, for a service's
// [Resolver]: clickhouse_user is EffectiveUser.
func (c Common) ResolvedCommon() Common {
	c.ClickHouseUser = c.EffectiveUser()
	return c
}

// DefaultKafka returns the local-development Kafka defaults.
func DefaultKafka() Kafka {
	return Kafka{KafkaBrokers: []string{"127.0.0.1:9092"}, TopicPrefix: "driftwatch."}
}

// DefaultClickHouse returns the local-development ClickHouse defaults.
func DefaultClickHouse() ClickHouse {
	return ClickHouse{ClickHouseURL: "http://127.0.0.1:8123/driftwatch"}
}

// DefaultLogging returns info-level text logs.
func DefaultLogging() Logging { return Logging{LogLevel: "info", LogFormat: "text"} }

// DefaultCommon returns the local-development defaults from docs/architecture.md with
// the service's own HTTP address.
func DefaultCommon(httpAddr string) Common {
	return Common{
		Kafka:           DefaultKafka(),
		ClickHouse:      DefaultClickHouse(),
		HTTPAddr:        httpAddr,
		HTTP:            DefaultHTTP(),
		Logging:         DefaultLogging(),
		APIAuth:         DefaultAPIAuth(),
		ShutdownTimeout: 30 * time.Second,
	}
}

type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
}

// Validate reports every invalid Kafka setting, each naming its YAML key.
func (k *Kafka) Validate() error {
	var p problems
	if len(k.KafkaBrokers) == 0 {
		p.add("kafka_brokers", "at least one broker is required")
	}
	for _, b := range k.KafkaBrokers {
		if err := CheckBroker(b); err != nil {
			p.add("kafka_brokers", "%q: %v", b, err)
		}
	}
	if !validTopicPrefix(k.TopicPrefix) {
		p.add("topic_prefix", "%q may hold only letters, digits, '.', '_' and '-'", k.TopicPrefix)
	}
	if k.TopicReplicationFactor < 0 || k.TopicReplicationFactor > 32 {
		p.add("topic_replication_factor", "must be from 0 (the brokers' default) to 32, got %d", k.TopicReplicationFactor)
	}
	if k.TopicMinInsyncReplicas < 0 {
		p.add("topic_min_insync_replicas", "must be 0 (the brokers' default) or more, got %d", k.TopicMinInsyncReplicas)
	}
	if k.TopicReplicationFactor > 0 && k.TopicMinInsyncReplicas > k.TopicReplicationFactor {
		p.add("topic_min_insync_replicas", "%d is more than topic_replication_factor %d: no acks=all write could succeed", k.TopicMinInsyncReplicas, k.TopicReplicationFactor)
	}
	p = append(p, k.validateSecurity())
	return errors.Join(p...)
}

// Validate reports an invalid ClickHouse URL without echoing a password,
// and TLS files that are unreadable, incomplete (a certificate without its
// key) or set for a URL that does not use TLS.
func (c *ClickHouse) Validate() error {
	var p problems
	if err := CheckClickHouseURL(c.ClickHouseURL); err != nil {
		p.add("clickhouse_url", "%v", err)
	}
	files := []struct{ key, path string }{
		{"clickhouse_tls_ca_file", c.ClickHouseTLSCAFile},
		{"clickhouse_tls_cert_file", c.ClickHouseTLSCertFile},
		{"clickhouse_tls_key_file", c.ClickHouseTLSKeyFile},
	}
	anySet := false
	for _, f := range files {
		if f.path == "" {
			continue
		}
		anySet = true
		if st, err := os.Stat(f.path); err != nil {
			p.add(f.key, "%v", err)
		} else if st.IsDir() {
			p.add(f.key, "%s is a directory, not a PEM file", f.path)
		}
	}
	if (c.ClickHouseTLSCertFile == "") != (c.ClickHouseTLSKeyFile == "") {
		p.add("clickhouse_tls_cert_file", "the client certificate and clickhouse_tls_key_file go together: set both or neither")
	}
	if anySet && !clickHouseURLSecure(c.ClickHouseURL) {
		p.add("clickhouse_url", "the clickhouse_tls_* files are set but the URL does not use TLS (use https://, or clickhouse://host:9440/db?secure=true)")
	}
	return errors.Join(p...)
}

// clickHouseURLSecure reports whether raw asks for TLS: https://, or a
// native URL with secure=true.
func clickHouseURLSecure(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return strings.HasPrefix(raw, "https://")
	}
	if u.Scheme == "https" {
		return true
	}
	secure, _ := strconv.ParseBool(u.Query().Get("secure"))
	return secure && (u.Scheme == "clickhouse" || u.Scheme == "tcp")
}

// Validate reports an invalid log level or format.
func (l *Logging) Validate() error {
	var p problems
	if _, err := parseLevel(l.LogLevel); err != nil {
		p.add("log_level", "%v", err)
	}
	if l.LogFormat != "text" && l.LogFormat != "json" {
		p.add("log_format", "%q is neither text nor json", l.LogFormat)
	}
	return errors.Join(p...)
}

// Validate reports every invalid shared setting, each naming its YAML key.
func (c *Common) Validate() error {
	p := problems{c.Kafka.Validate(), c.ClickHouse.Validate()}
	if err := checkHostPort(c.HTTPAddr); err != nil {
		p.add("http_addr", "%q: %v", c.HTTPAddr, err)
	}
	p = append(p, c.HTTP.Validate(), c.Logging.Validate())
	p = append(p, c.APIAuth.Validate(c.HTTPAddr))
	if c.ShutdownTimeout <= 0 {
		p.add("shutdown_timeout", "must be positive, got %s", c.ShutdownTimeout)
	}
	return errors.Join(p...)
}

func validTopicPrefix(s string) bool {
	if len(s) > 200 {
		return false
	}
	for _, r := range s {
		if !(r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// Logger builds the service's logger from LogLevel and LogFormat.
func (l *Logging) Logger(service string) *slog.Logger {
	lvl, _ := parseLevel(l.LogLevel)
	hopts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, hopts)
	if l.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, hopts)
	}
	return slog.New(h).With("service", service)
}

// CheckClickHouseURL checks the shape of a ClickHouse URL without
// connecting; the error never contains the password.
func CheckClickHouseURL(raw string) error {
	if raw == "" {
		return errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the input, which may hold a password.
		return errors.New("not a URL (expected clickhouse://host:9000/db or http://host:8123/db)")
	}
	switch u.Scheme {
	case "clickhouse", "tcp", "http", "https":
	default:
		return fmt.Errorf("scheme %q is not one of clickhouse, tcp, http, https", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("host is missing (expected clickhouse://host:9000/db or http://host:8123/db)")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
	}
	if db := strings.Trim(u.Path, "/"); strings.Contains(db, "/") {
		return fmt.Errorf("path %q must be a single database name", u.Path)
	}
	return nil
}

// CheckBroker reports whether b is a Kafka broker address a client can
// dial: host:port with a host and a port from 1 to 65535, no scheme. It is
// the one broker check: config validation and kafkaio both use it, so
// -check-config refuses what the Kafka clients would.
func CheckBroker(b string) error {
	if b == "" {
		return errors.New("empty entry")
	}
	if strings.Contains(b, "://") {
		return errors.New("want host:port without a scheme")
	}
	host, port, err := net.SplitHostPort(b)
	if err != nil {
		return fmt.Errorf("want host:port: %v", err)
	}
	if host == "" {
		return errors.New("missing host")
	}
	if strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("host %q is not a host name or IP address", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("not host:port")
	}
	_ = host // an empty host means every interface, which is allowed
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q is not one of debug, info, warn, error", s)
	}
	return l, nil
}
