package ingest_test

import (
	"testing"

	"github.com/driftwatch/driftwatch/ingest"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/config/configtest"
)

// TestCheckConfigRoundTrip: ingest's -check-config prints the
// configuration in effect (zero settings as their defaults, the URL's
// ClickHouse user), and read back as a -config file it configures ingest
// the same way.
func TestCheckConfigRoundTrip(t *testing.T) {
	configtest.RoundTrip(t, "ingest", func() config.Validator { return ingest.DefaultConfig() },
		[]string{"models", "personal_hash_key_file", "memory_limit"},
		[]configtest.Case{
			{Name: "defaults"},
			{Name: "user from the URL", Env: map[string]string{"DRIFTWATCH_CLICKHOUSE_URL": "clickhouse://reader@ch1:9000,ch2:9000/dw"}},
			{Name: "rules and flags", File: "models:\n  m1:\n    personal:\n      email: drop\n", Args: []string{"-batch-rows", "1000", "-clickhouse-user", "ingester"}},
		})
}
