// Package testenv tells integration tests where the real Kafka broker and
// ClickHouse server are, and enforces the project's rule for a missing
// service: outside CI the test skips with a message saying what to start;
// under CI=true it fails, so a green CI run never hides a skipped
// integration test.
package testenv

import (
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI (CI=true), where a missing
// service is a failure rather than a skip.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// Unavailable skips the test outside CI and fails it under CI=true.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true and a required service is unavailable: "+format, args...)
	}
	t.Skipf("skipping: "+format, args...)
}

// KafkaBrokers returns the broker list from DRIFTWATCH_KAFKA_BROKERS after
// checking that the first broker accepts TCP connections.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	raw := os.Getenv("DRIFTWATCH_KAFKA_BROKERS")
	if raw == "" {
		Unavailable(t, "DRIFTWATCH_KAFKA_BROKERS is not set (run `make test`, or `scripts/kafka.sh start` and export DRIFTWATCH_KAFKA_BROKERS=127.0.0.1:9092)")
		return nil
	}
	var brokers []string
	for _, b := range strings.Split(raw, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	if err := dial(brokers[0]); err != nil {
		Unavailable(t, "Kafka broker %s from DRIFTWATCH_KAFKA_BROKERS is unreachable: %v", brokers[0], err)
	}
	return brokers
}

// ClickHouseURL returns DRIFTWATCH_CLICKHOUSE_URL after checking that its
// host accepts TCP connections.
func ClickHouseURL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv("DRIFTWATCH_CLICKHOUSE_URL")
	if raw == "" {
		Unavailable(t, "DRIFTWATCH_CLICKHOUSE_URL is not set (run `make test`, or start bin/clickhouse-embedded and export DRIFTWATCH_CLICKHOUSE_URL=http://127.0.0.1:8123/default)")
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("DRIFTWATCH_CLICKHOUSE_URL is not a URL: %v", err)
	}
	if err := dial(u.Host); err != nil {
		Unavailable(t, "ClickHouse at %s from DRIFTWATCH_CLICKHOUSE_URL is unreachable: %v", u.Host, err)
	}
	return raw
}

// Env returns the value of an environment variable that names something a
// test needs (a binary, a library), or reports it unavailable.
func Env(t testing.TB, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		Unavailable(t, "%s is not set: %s", name, what)
	}
	return v
}

func dial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}
