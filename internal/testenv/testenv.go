// Package testenv tells integration tests where the real Kafka broker and
// ClickHouse server are, and enforces the project's rule for a missing
// service: outside CI the test skips with a message saying what to start;
// under CI=true it fails, so a green CI run never hides a skipped
// integration test.
//
// Tests have variables of their own, DRIFTWATCH_TEST_KAFKA_BROKERS and
// DRIFTWATCH_TEST_CLICKHOUSE_URL (set by scripts/test.sh and
// scripts/stack.sh env), never the DRIFTWATCH_KAFKA_BROKERS and
// DRIFTWATCH_CLICKHOUSE_URL the services read: a shell set up for
// production runs the tests without a service, so they skip (tests create
// and drop databases and topics), and the services a test starts get their
// brokers and URL from the test, explicitly.
package testenv

import (
	"net"
	"net/url"
	"os"
	"strconv"
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

// The variables tests read; the services' own names are never read here.
const (
	// KafkaBrokersVar holds the test brokers, comma-separated.
	KafkaBrokersVar = "DRIFTWATCH_TEST_KAFKA_BROKERS"
	// ClickHouseURLVar holds the test ClickHouse server's URL.
	ClickHouseURLVar = "DRIFTWATCH_TEST_CLICKHOUSE_URL"
)

// KafkaBrokers returns the broker list from DRIFTWATCH_TEST_KAFKA_BROKERS
// after checking that the first broker accepts TCP connections.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	raw := os.Getenv(KafkaBrokersVar)
	if raw == "" {
		Unavailable(t, KafkaBrokersVar+" is not set (run `make test`, or start a stack with scripts/stack.sh start and eval \"$(scripts/stack.sh env)\")")
		return nil
	}
	var brokers []string
	for _, b := range strings.Split(raw, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	if err := dial(brokers[0]); err != nil {
		Unavailable(t, "Kafka broker %s from %s is unreachable: %v", brokers[0], KafkaBrokersVar, err)
	}
	return brokers
}

// ClickHouseURL returns DRIFTWATCH_TEST_CLICKHOUSE_URL after checking that
// its host accepts TCP connections.
func ClickHouseURL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv(ClickHouseURLVar)
	if raw == "" {
		Unavailable(t, ClickHouseURLVar+" is not set (run `make test`, or start a stack with scripts/stack.sh start and eval \"$(scripts/stack.sh env)\")")
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s is not a URL: %v", ClickHouseURLVar, err)
	}
	if err := dial(u.Host); err != nil {
		Unavailable(t, "ClickHouse at %s from %s is unreachable: %v", u.Host, ClickHouseURLVar, err)
	}
	return raw
}

// Private is for a test that starts a private broker, server or service
// process of its own (internal/teststack): it runs only where the tests
// are set up for integration (DRIFTWATCH_TEST_KAFKA_BROKERS set, as make
// test and scripts/stack.sh env do), and otherwise is unavailable like a
// missing service, so `make test-unit` starts nothing. what names what the
// test would start.
func Private(t testing.TB, what string) {
	t.Helper()
	if os.Getenv(KafkaBrokersVar) == "" {
		Unavailable(t, "%s is not set, so no private %s is started (run `make test`, or eval \"$(scripts/stack.sh env)\")", KafkaBrokersVar, what)
	}
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

// SeedVar names the variable that fixes the seed of every randomised
// test (Seed).
const SeedVar = "DRIFTWATCH_TEST_SEED"

// Seed returns the seed a randomised test draws from: DRIFTWATCH_TEST_SEED
// when it is set (a failing run's seed, passed back in to repeat it), else
// one from the clock. It logs the seed in use with how to rerun with it, so
// every failure can be reproduced.
func Seed(t testing.TB) int64 {
	t.Helper()
	if raw := os.Getenv(SeedVar); raw != "" {
		seed, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil {
			t.Fatalf("%s=%q is not an integer: %v", SeedVar, raw, err)
		}
		t.Logf("seed %d from %s", seed, SeedVar)
		return seed
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d (rerun with %s=%d)", seed, SeedVar, seed)
	return seed
}

func dial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// ChildEnv returns the environment for a program a test starts: the
// test's environment without any DRIFTWATCH_* variable (a production
// setting the shell may hold, or the test's own DRIFTWATCH_TEST_*), then
// extra, so the program sees exactly the driftwatch settings the test
// gives it.
func ChildEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "DRIFTWATCH_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}
