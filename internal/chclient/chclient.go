// Package chclient is a thin wrapper over clickhouse-go/v2: it turns the
// DRIFTWATCH_CLICKHOUSE_URL contract (clickhouse://host:9000/db for the
// native protocol, clickhouse://host:9440/db?secure=true for it over TLS,
// http(s)://host:8123/db for HTTP, credentials in the URL or given
// separately) into a connection, and keeps the password out of every
// string it can print. TLS connections verify the server against the
// system roots or a CA file, and can present a client certificate.
package chclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/config"
)

// Config says where ClickHouse is and who to connect as.
type Config struct {
	// URL is clickhouse://host:port/db (native; tcp:// is accepted too;
	// ?secure=true for TLS) or http(s)://host:port/db. Hosts may be a
	// comma-separated list.
	URL string
	// User and Password override the URL's credentials when not empty.
	User     string
	Password string
	// DialTimeout bounds connecting; 10s when zero.
	DialTimeout time.Duration
	// Settings are ClickHouse settings sent with every query.
	Settings map[string]any
	// TLS names the CA and client certificate files of a TLS connection;
	// they need a URL that asks for TLS (https://, or ?secure=true).
	TLS TLSFiles
}

// Target is a parsed Config.
type Target struct {
	Protocol clickhouse.Protocol
	Secure   bool
	Addrs    []string
	Database string
	User     string
	Password string
}

// Parse checks a Config and resolves defaults: port 9000 (native), 9440
// (native with secure=true), 8123 (http) or 8443 (https); database
// "default"; user "default". Errors never contain the password.
func Parse(c Config) (Target, error) {
	var t Target
	// url.Parse rejects a host list ("a:9000,b:9000"), so parse the URL
	// with a placeholder host and take the hosts from the authority.
	hosts, masked := splitHosts(c.URL)
	u, err := url.Parse(masked)
	if err != nil || c.URL == "" {
		return t, errors.New("parse ClickHouse URL: expected clickhouse://host:9000/db or http://host:8123/db")
	}
	port := ""
	switch u.Scheme {
	case "clickhouse", "tcp":
		t.Protocol, port = clickhouse.Native, "9000"
	case "http":
		t.Protocol, port = clickhouse.HTTP, "8123"
	case "https":
		t.Protocol, port, t.Secure = clickhouse.HTTP, "8443", true
	default:
		return t, fmt.Errorf("parse ClickHouse URL %s: scheme %q is not one of clickhouse, tcp, http, https", Redact(c.URL), u.Scheme)
	}
	if v := u.Query().Get("secure"); v != "" {
		secure, err := strconv.ParseBool(v)
		if err != nil {
			return t, fmt.Errorf("parse ClickHouse URL %s: secure=%q is neither true nor false", Redact(c.URL), v)
		}
		if t.Protocol == clickhouse.HTTP && secure != t.Secure {
			return t, fmt.Errorf("parse ClickHouse URL %s: secure=%s contradicts scheme %s (use https:// for TLS over HTTP)", Redact(c.URL), v, u.Scheme)
		}
		if t.Protocol == clickhouse.Native && secure {
			t.Secure, port = true, "9440"
		}
	}
	if c.TLS.Set() && !t.Secure {
		return t, fmt.Errorf("parse ClickHouse URL %s: TLS files are set but the URL does not ask for TLS (use https://, or clickhouse://…?secure=true)", Redact(c.URL))
	}
	if hosts == "" {
		return t, fmt.Errorf("parse ClickHouse URL %s: host is missing", Redact(c.URL))
	}
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), port)
		}
		host, p, _ := net.SplitHostPort(h)
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || host == "" || strings.ContainsAny(host, "%/ @") {
			return t, fmt.Errorf("parse ClickHouse URL %s: %q is not host:port", Redact(c.URL), h)
		}
		t.Addrs = append(t.Addrs, h)
	}
	t.Database = strings.Trim(u.Path, "/")
	if t.Database == "" {
		t.Database = "default"
	}
	if strings.Contains(t.Database, "/") {
		return t, fmt.Errorf("parse ClickHouse URL %s: path must be a single database name", Redact(c.URL))
	}
	t.User = "default"
	if u.User != nil {
		if n := u.User.Username(); n != "" {
			t.User = n
		}
		t.Password, _ = u.User.Password()
	}
	if p := u.Query().Get("password"); p != "" && t.Password == "" {
		t.Password = p // clickhouse-go's DSN form, ?password=
	}
	if c.User != "" {
		t.User = c.User
	}
	if c.Password != "" {
		t.Password = c.Password
	}
	return t, nil
}

// splitHosts returns the host list of raw and raw with that list replaced
// by a single placeholder host.
func splitHosts(raw string) (hosts, masked string) {
	i := strings.Index(raw, "://")
	if i < 0 {
		return "", raw
	}
	rest := raw[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	auth := rest[:end]
	at := strings.LastIndex(auth, "@")
	hosts = auth[at+1:]
	if hosts == "" {
		return "", raw
	}
	return hosts, raw[:i+3] + auth[:at+1] + "placeholder" + rest[end:]
}

// Redact returns the URL with any password replaced, safe to log.
func Redact(raw string) string {
	hosts, masked := splitHosts(raw)
	u, err := url.Parse(masked)
	if err != nil {
		// Cannot tell where the password is; show only what precedes "://".
		if i := strings.Index(raw, "://"); i >= 0 {
			return raw[:i] + "://<unparseable>"
		}
		return "<unparseable>"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	if q := u.Query(); len(q) > 0 {
		hidden := false
		for k := range q {
			if config.SecretParam(k) {
				q.Set(k, "xxxxx")
				hidden = true
			}
		}
		if hidden {
			u.RawQuery = q.Encode()
		}
	}
	return strings.Replace(u.String(), "placeholder", hosts, 1)
}

// Options builds clickhouse-go options for the target database; it reads
// the TLS files of c when the target is secure.
func (t Target) Options(c Config) (*clickhouse.Options, error) {
	timeout := c.DialTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	o := &clickhouse.Options{
		Protocol:    t.Protocol,
		Addr:        t.Addrs,
		Auth:        clickhouse.Auth{Database: t.Database, Username: t.User, Password: t.Password},
		DialTimeout: timeout,
		Settings:    clickhouse.Settings{},
	}
	for k, v := range c.Settings {
		o.Settings[k] = v
	}
	if t.Secure {
		tc, err := c.TLS.Config()
		if err != nil {
			return nil, err
		}
		o.TLS = tc
	}
	return o, nil
}

// Open connects to ClickHouse and pings it. If the database named in the
// URL does not exist yet and createDatabase is true, it is created first
// (through the "default" database), which is what `driftwatch migrate` and
// the services do on start.
func Open(ctx context.Context, c Config, createDatabase bool) (driver.Conn, error) {
	t, err := Parse(c)
	if err != nil {
		return nil, err
	}
	if createDatabase && t.Database != "default" {
		if err := ensureDatabase(ctx, c, t); err != nil {
			return nil, err
		}
	}
	opts, err := t.Options(c)
	if err != nil {
		return nil, fmt.Errorf("open ClickHouse %s: %w", Redact(c.URL), err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open ClickHouse %s: %w", Redact(c.URL), err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("ping ClickHouse %s (database %s): %w", Redact(c.URL), t.Database, explainTLS(err, c.TLS))
	}
	return conn, nil
}

func ensureDatabase(ctx context.Context, c Config, t Target) error {
	boot := t
	boot.Database = "default"
	opts, err := boot.Options(c)
	if err != nil {
		return fmt.Errorf("open ClickHouse %s: %w", Redact(c.URL), err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return fmt.Errorf("open ClickHouse %s: %w", Redact(c.URL), err)
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+chsql.Ident(t.Database)); err != nil {
		return fmt.Errorf("create database %s on %s: %w", t.Database, Redact(c.URL), explainTLS(err, c.TLS))
	}
	return nil
}

// Code returns the ClickHouse error code carried by err (from either
// protocol), or 0 when err carries none.
func Code(err error) int32 {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return ex.Code
	}
	return 0
}

// FromConfig is the client configuration of a service's ClickHouse
// settings.
func FromConfig(c config.ClickHouse) Config {
	return Config{URL: c.ClickHouseURL, User: c.ClickHouseUser, Password: c.ClickHousePassword.Reveal(),
		TLS: TLSFiles{CAFile: c.ClickHouseTLSCAFile, CertFile: c.ClickHouseTLSCertFile, KeyFile: c.ClickHouseTLSKeyFile}}
}
