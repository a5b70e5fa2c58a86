package testenv

import (
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how a check ended: Skipf and
// Fatalf stop the goroutine, as the real ones do.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func run(t *testing.T, check func(testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); check(r) }()
	<-done
	return r
}

// TestProductionVariablesAreNotRead: with only the services' own
// DRIFTWATCH_KAFKA_BROKERS and DRIFTWATCH_CLICKHOUSE_URL set (a shell set
// up for production, pointing at servers that answer), testenv reports
// both services unavailable: skipped outside CI, failed under CI=true,
// naming the test variable; never the production address.
func TestProductionVariablesAreNotRead(t *testing.T) {
	// Real listeners, so the only reason to refuse is the variable's name.
	addr := listen(t)
	t.Setenv("DRIFTWATCH_KAFKA_BROKERS", addr)
	t.Setenv("DRIFTWATCH_CLICKHOUSE_URL", "http://"+addr+"/production")
	t.Setenv(KafkaBrokersVar, "")
	t.Setenv(ClickHouseURLVar, "")
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		for name, check := range map[string]func(testing.TB){
			KafkaBrokersVar:  func(tb testing.TB) { KafkaBrokers(tb) },
			ClickHouseURLVar: func(tb testing.TB) { ClickHouseURL(tb) },
		} {
			r := run(t, check)
			got := r.skipped
			if ci == "true" {
				got = r.failed
			}
			if got == "" || !strings.Contains(got, name+" is not set") || strings.Contains(got, addr) {
				t.Errorf("CI=%q, %s: skipped %q, failed %q; want it unavailable for want of %s", ci, name, r.skipped, r.failed, name)
			}
		}
	}
	// The test variables are what is read.
	t.Setenv("CI", "")
	t.Setenv(KafkaBrokersVar, addr)
	t.Setenv(ClickHouseURLVar, "http://"+addr+"/test")
	var brokers []string
	var url string
	if r := run(t, func(tb testing.TB) { brokers, url = KafkaBrokers(tb), ClickHouseURL(tb) }); r.skipped != "" || r.failed != "" {
		t.Fatalf("with the test variables set: skipped %q, failed %q", r.skipped, r.failed)
	}
	if !slices.Equal(brokers, []string{addr}) || url != "http://"+addr+"/test" {
		t.Errorf("got brokers %v and URL %q from the test variables", brokers, url)
	}
}

// TestChildEnvDropsDriftwatchVariables: a program a test starts sees only
// the DRIFTWATCH_* variables the test gives it.
func TestChildEnvDropsDriftwatchVariables(t *testing.T) {
	t.Setenv("DRIFTWATCH_KAFKA_BROKERS", "production:9092")
	t.Setenv("DRIFTWATCH_CLICKHOUSE_PASSWORD", "production-secret")
	t.Setenv(KafkaBrokersVar, "127.0.0.1:1")
	t.Setenv("TESTENV_OTHER", "kept")
	env := ChildEnv("DRIFTWATCH_KAFKA_BROKERS=127.0.0.1:2")
	var dw []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "DRIFTWATCH_") {
			dw = append(dw, kv)
		}
	}
	if !slices.Equal(dw, []string{"DRIFTWATCH_KAFKA_BROKERS=127.0.0.1:2"}) || !slices.Contains(env, "TESTENV_OTHER=kept") {
		t.Errorf("child environment's DRIFTWATCH_* variables %v (want only the one given), TESTENV_OTHER kept: %v", dw, slices.Contains(env, "TESTENV_OTHER=kept"))
	}
}

func listen(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// TestPrivateNeedsTheTestStack: without the tests' variables no private
// process starts (skipped; failed under CI=true).
func TestPrivateNeedsTheTestStack(t *testing.T) {
	t.Setenv("DRIFTWATCH_KAFKA_BROKERS", "production:9092")
	t.Setenv(KafkaBrokersVar, "")
	t.Setenv("CI", "")
	if r := run(t, func(tb testing.TB) { Private(tb, "Kafka broker") }); !strings.Contains(r.skipped, "no private Kafka broker is started") {
		t.Errorf("skipped %q, failed %q", r.skipped, r.failed)
	}
	t.Setenv(KafkaBrokersVar, "127.0.0.1:1")
	if r := run(t, func(tb testing.TB) { Private(tb, "Kafka broker") }); r.skipped != "" || r.failed != "" {
		t.Errorf("with the test stack set: skipped %q, failed %q", r.skipped, r.failed)
	}
}
