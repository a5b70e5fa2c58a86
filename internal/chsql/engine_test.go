package chsql_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/testenv"
)

// TestEngineReadsBack: the real ClickHouse engine reads every literal back
// as the value it was made from, awkward characters included.
func TestEngineReadsBack(t *testing.T) {
	url := testenv.ClickHouseURL(t)
	ctx := context.Background()
	conn, err := chclient.Open(ctx, chclient.Config{URL: url}, false)
	if err != nil {
		t.Fatalf("open %s: %v", chclient.Redact(url), err)
	}
	defer conn.Close()
	for _, s := range []string{"churn", "it's", `a\b`, `\'`, "", "x' OR '1'='1", "tab\there", "ünï ✓", "new\nline"} {
		var got string
		if err := conn.QueryRow(ctx, "SELECT "+chsql.String(s)).Scan(&got); err != nil {
			t.Errorf("SELECT %s: %v", chsql.String(s), err)
			continue
		}
		if got != s {
			t.Errorf("SELECT %s = %q, want %q", chsql.String(s), got, s)
		}
	}
	for _, name := range []string{"plain", "we`ird\\", "with space"} {
		var got string
		q := fmt.Sprintf("SELECT %s FROM (SELECT 'v' AS %s)", chsql.Ident(name), chsql.Ident(name))
		if err := conn.QueryRow(ctx, q).Scan(&got); err != nil || got != "v" {
			t.Errorf("%s: %q, %v", q, got, err)
		}
	}
	at := time.Date(2026, 12, 3, 17, 4, 5, 123_000_000, time.UTC)
	var got time.Time
	if err := conn.QueryRow(ctx, "SELECT "+chsql.Time(at)).Scan(&got); err != nil || !got.Equal(at) {
		t.Errorf("SELECT %s = %s, %v; want %s", chsql.Time(at), got, err, at)
	}
}
