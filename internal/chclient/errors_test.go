package chclient_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/testdb"
)

func TestClassify(t *testing.T) {
	ex := func(code int32, msg string) error {
		return fmt.Errorf("insert 10 rows into inferences: %w", &clickhouse.Exception{Code: code, Message: msg})
	}
	for _, tc := range []struct {
		name string
		err  error
		want chclient.Class
		code int32
	}{
		{"connection refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, chclient.Transient, 0},
		{"deadline", fmt.Errorf("send: %w", context.DeadlineExceeded), chclient.Transient, 0},
		{"timeout", ex(159, "Timeout exceeded: elapsed 61 seconds"), chclient.Transient, 159},
		{"memory", ex(241, "Memory limit (total) exceeded"), chclient.Transient, 241},
		{"too many queries", ex(202, "Too many simultaneous queries"), chclient.Transient, 202},
		{"shutting down", ex(394, "Query was cancelled"), chclient.Transient, 394},
		{"too many parts", ex(252, "Too many parts (300 with average size of 1.00 MiB) in table 'inferences'. Merges are processing significantly slower than inserts"), chclient.Transient, 252},
		{"too many partitions", ex(252, "Too many partitions for single INSERT block (more than 100). The limit is controlled by 'max_partitions_per_insert_block' setting"), chclient.Permanent, 252},
		{"unknown table", ex(60, "Unknown table expression identifier 'inferences'"), chclient.Setup, 60},
		{"access denied", ex(497, "alice: Not enough privileges"), chclient.Setup, 497},
		{"authentication", ex(516, "default: Authentication failed"), chclient.Setup, 516},
		{"type mismatch", ex(53, "Type mismatch in IN or VALUES section"), chclient.Permanent, 53},
		{"query too large", ex(62, "Max query size exceeded"), chclient.Permanent, 62},
		{"constraint", ex(469, "Constraint `c` for table inferences is violated"), chclient.Permanent, 469},
		{"http 413", &clickhouse.HTTPError{StatusCode: 413, Err: errors.New("request entity too large")}, chclient.Permanent, 0},
		{"http 502", &clickhouse.HTTPError{StatusCode: 502, Err: errors.New("bad gateway")}, chclient.Transient, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, e := chclient.Classify(tc.err)
			if got != tc.want {
				t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
			}
			var code int32
			if e != nil {
				code = e.Code
			}
			if code != tc.code {
				t.Errorf("exception code %d, want %d", code, tc.code)
			}
		})
	}
}

// TestClassifyServer classifies what the real server answers: an insert of
// more partitions than max_partitions_per_insert_block, a missing table
// and a port nobody listens on.
func TestClassifyServer(t *testing.T) {
	conn, _ := testdb.Open(t, "classify")
	ctx := context.Background()
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_partitions_per_insert_block": 3}))
	err := conn.Exec(ctx, "INSERT INTO business_metrics (event_id, metric, value, timestamp) SELECT toString(number), 'm', 1, now() - toIntervalDay(number) FROM numbers(5)")
	if got, e := chclient.Classify(err); got != chclient.Permanent || e == nil || e.Code != 252 {
		t.Errorf("too many partitions: Classify(%v) = %s, %v; want permanent with code 252", err, got, e)
	}
	err = conn.Exec(context.Background(), "INSERT INTO no_such_table (x) VALUES (1)")
	if got, e := chclient.Classify(err); got != chclient.Setup || e == nil || e.Code != 60 {
		t.Errorf("missing table: Classify(%v) = %s, %v; want setup with code 60", err, got, e)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = chclient.Open(context.Background(), chclient.Config{URL: "http://" + addr + "/default", DialTimeout: time.Second}, false)
	if err == nil {
		t.Fatalf("open %s: no error from a closed port", addr)
	}
	if got, _ := chclient.Classify(err); got != chclient.Transient {
		t.Errorf("closed port: Classify(%v) = %s, want transient", err, got)
	}
}
