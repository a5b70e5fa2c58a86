package ingest

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/schemas"
)

func TestGroups(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parts []int32
		limit int
		want  [][2]int
	}{
		{"empty", nil, 3, nil},
		{"one partition", []int32{7, 7, 7}, 3, [][2]int{{0, 3}}},
		{"at the limit", []int32{1, 2, 3, 1, 2, 3}, 3, [][2]int{{0, 6}}},
		{"backfill, one row a day", []int32{1, 2, 3, 4, 5, 6, 7}, 3, [][2]int{{0, 3}, {3, 6}, {6, 7}}},
		{"live rows between backfill rows", []int32{1, 9, 2, 9, 3, 9, 4, 9}, 3, [][2]int{{0, 4}, {4, 8}}},
		{"limit one", []int32{1, 1, 2, 1}, 1, [][2]int{{0, 2}, {2, 3}, {3, 4}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := groups(len(tc.parts), tc.limit, func(i int) int32 { return tc.parts[i] })
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("groups(%v, %d) = %v, want %v", tc.parts, tc.limit, got, tc.want)
			}
			for _, g := range got {
				distinct := map[int32]bool{}
				for _, p := range tc.parts[g[0]:g[1]] {
					distinct[p] = true
				}
				if len(distinct) > tc.limit {
					t.Errorf("range %v touches %d partitions, more than %d", g, len(distinct), tc.limit)
				}
			}
		})
	}
}

// readDeadLetters reads n dead letters from the stack's dead-letter topic.
func (s *stack) readDeadLetters(t *testing.T, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.brokers, Topic: s.kopts.Topic("dead-letters"), GroupID: "check", StartOffset: kafka.FirstOffset, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read dead letters (%d of %d): %v", len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

func (s *stack) waitCount(t *testing.T, query string, want uint64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		n := s.count(t, query)
		if n >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s = %d, want %d", d, query, n, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestBackfillWithLiveTraffic sends a two-year backfill, one inference a
// day, oldest first, while live inferences keep arriving, to tables
// partitioned by day that keep 400 days. ClickHouse refuses an insert block
// of more than 100 partitions, so the backfill has to be inserted in
// several blocks; the days beyond retention have to become dead letters.
func TestBackfillWithLiveTraffic(t *testing.T) {
	s := newStack(t)
	const retentionDays, backfillDays = 400, 730
	// The test database was migrated with the default 90 days; keep 400,
	// so that the days in retention alone exceed the 100-partition limit.
	if err := s.conn.Exec(context.Background(), fmt.Sprintf("ALTER TABLE inferences MODIFY TTL toDateTime(timestamp) + INTERVAL %d DAY", retentionDays)); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ing, err := New(Options{Kafka: s.kopts, Settings: Settings{ConsumerGroup: "g", BatchRows: 5000, BatchAge: 200 * time.Millisecond},
		Conn: s.conn, Registerer: reg, RetentionDays: retentionDays})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		ing.Close()
	}()

	// Live traffic: one inference every 20 ms until the backfill is in.
	var live atomic.Int64
	stopLive := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w, err := kafkaio.NewWriter(s.kopts, "inferences")
		if err != nil {
			t.Error(err)
			return
		}
		defer w.Close()
		for i := 0; ; i++ {
			select {
			case <-stopLive:
				return
			case <-time.After(20 * time.Millisecond):
			}
			v := strings.Replace(inferenceJSON(i, time.Now()), `"event_id":"ev-`, `"event_id":"live-`, 1)
			if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte("m0"), Value: []byte(v)}); err != nil {
				t.Errorf("produce live event: %v", err)
				return
			}
			live.Add(1)
		}
	}()
	s.waitCount(t, "SELECT count() FROM inferences WHERE startsWith(event_id, 'live-')", 10, time.Minute)

	now := time.Now().UTC()
	var msgs []kafka.Message
	inRetention := 0
	for d := backfillDays; d >= 1; d-- {
		ts := now.Add(-time.Duration(d)*24*time.Hour - time.Hour)
		if d < retentionDays {
			inRetention++
		}
		v := strings.Replace(inferenceJSON(d, ts), `"event_id":"ev-`, `"event_id":"bf-`, 1)
		msgs = append(msgs, kafka.Message{Key: []byte("m1"), Value: []byte(v)})
	}
	s.produce(t, "inferences", msgs...)
	older := backfillDays - inRetention

	s.waitCount(t, "SELECT count() FROM inferences WHERE startsWith(event_id, 'bf-')", uint64(inRetention), 2*time.Minute)
	s.waitCount(t, "SELECT count() FROM dead_letters WHERE reason = 'older_than_retention'", uint64(older), time.Minute)
	close(stopLive)
	wg.Wait()
	s.waitCount(t, "SELECT count() FROM inferences WHERE startsWith(event_id, 'live-')", uint64(live.Load()), time.Minute)

	// Exactly once: every row once, no row twice even before FINAL.
	if n := s.count(t, "SELECT count() FROM inferences WHERE startsWith(event_id, 'bf-')"); n != uint64(inRetention) {
		t.Errorf("backfill rows = %d, want %d", n, inRetention)
	}
	if n := s.count(t, "SELECT uniqExact(toDate(timestamp)) FROM inferences WHERE startsWith(event_id, 'bf-')"); n != uint64(inRetention) {
		t.Errorf("backfill days stored = %d, want %d", n, inRetention)
	}
	if n := s.count(t, "SELECT count() FROM inferences WHERE startsWith(event_id, 'live-')"); n != uint64(live.Load()) {
		t.Errorf("live rows = %d, want %d", n, live.Load())
	}
	if n := s.count(t, "SELECT count() FROM dead_letters WHERE reason = 'older_than_retention' AND startsWith(payload, '{\"event_id\":\"bf-')"); n != uint64(older) {
		t.Errorf("older_than_retention dead letters = %d, want %d", n, older)
	}
	if v := testutil.ToFloat64(ing.m.deadLettered.WithLabelValues(s.kopts.Topic("inferences"), string(schemas.ReasonOlderThanRetention))); v != float64(older) {
		t.Errorf("dead-lettered{older_than_retention} = %v, want %d", v, older)
	}
	dl := s.readDeadLetters(t, older)
	if h := headers(dl[0]); h[schemas.HeaderReason] != "older_than_retention" || !strings.Contains(h[schemas.HeaderError], "retention of 400 days") {
		t.Errorf("dead letter headers %v", h)
	}
	// How far live events lagged while the backfill went in (a figure, not
	// a check: timings are never asserted).
	var lag int64
	if err := s.conn.QueryRow(context.Background(), "SELECT max(dateDiff('millisecond', timestamp, ingested_at)) FROM inferences WHERE startsWith(event_id, 'live-')").Scan(&lag); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d backfill rows stored, %d dead-lettered as older than %d days, %d live rows; live events stored at most %d ms after their timestamp",
		inRetention, older, retentionDays, live.Load(), lag)
}

func headers(m kafka.Message) map[string]string {
	h := map[string]string{}
	for _, kv := range m.Headers {
		h[kv.Key] = string(kv.Value)
	}
	return h
}

// TestStorageRefusesOneRow: a CHECK constraint an operator put on the
// table makes ClickHouse refuse one row of a batch. That row is a dead
// letter with reason rejected_by_storage and the server's code; every
// other row is stored, and the rows behind it keep flowing.
func TestStorageRefusesOneRow(t *testing.T) {
	s := newStack(t)
	if err := s.conn.Exec(context.Background(), "ALTER TABLE inferences ADD CONSTRAINT no_poison CHECK prediction_id != 'p-poison'"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	const n = 301
	var msgs []kafka.Message
	for i := range n {
		v := inferenceJSON(i, now.Add(-time.Duration(i)*time.Second))
		if i == 150 {
			v = strings.Replace(v, `"prediction_id":"p-150"`, `"prediction_id":"p-poison"`, 1)
		}
		msgs = append(msgs, kafka.Message{Key: []byte("m0"), Value: []byte(v)})
	}
	s.produce(t, "inferences", msgs...)

	reg := prometheus.NewRegistry()
	ing, err := New(Options{Kafka: s.kopts, Settings: Settings{ConsumerGroup: "g", BatchRows: 1000, BatchAge: 500 * time.Millisecond, RetryMax: time.Second}, Conn: s.conn, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		ing.Close()
	}()
	s.waitCount(t, "SELECT count() FROM inferences", n-1, time.Minute)
	s.waitCount(t, "SELECT count() FROM dead_letters", 1, time.Minute)
	// A later event behind the refused one is stored too.
	s.produce(t, "inferences", kafka.Message{Key: []byte("m0"), Value: []byte(inferenceJSON(1000, now))})
	s.waitCount(t, "SELECT count() FROM inferences", n, time.Minute)

	if c := s.count(t, "SELECT count() FROM inferences WHERE prediction_id = 'p-poison'"); c != 0 {
		t.Errorf("the refused row is stored %d times", c)
	}
	var reason, msg string
	if err := s.conn.QueryRow(context.Background(), "SELECT reason, error FROM dead_letters").Scan(&reason, &msg); err != nil {
		t.Fatal(err)
	}
	if reason != "rejected_by_storage" || !strings.Contains(msg, "code 469") || !strings.Contains(msg, "no_poison") {
		t.Errorf("dead_letters row: reason %q, error %q; want rejected_by_storage with code 469 and the constraint", reason, msg)
	}
	dl := s.readDeadLetters(t, 1)
	h := headers(dl[0])
	if h[schemas.HeaderReason] != "rejected_by_storage" || !strings.Contains(string(dl[0].Value), "p-poison") || h[schemas.HeaderSourceOffset] == "" {
		t.Errorf("dead letter %.60q headers %v", dl[0].Value, h)
	}
	if v := testutil.ToFloat64(ing.m.written.WithLabelValues(s.kopts.Topic("inferences"))); v != n {
		t.Errorf("written = %v, want %d", v, n)
	}
	t.Logf("the refused row's error: %s", msg)
}
