package admin

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/ingest"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

// TestForget sends three subjects' events (inferences, outcomes, business
// metrics and a rejected inference each) through real Kafka and ingest
// into ClickHouse, then erases one subject by prediction id, one by event
// id and one by a hashed segment value with driftwatch forget: each time
// nothing of the subject is left in any table and the others are intact.
func TestForget(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	conn, db := testdb.Open(t, "forget_cli")
	ctx := context.Background()
	kopts := kafkaio.Options{Brokers: brokers, TopicPrefix: "forget-test-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "."}
	var specs []kafkaio.TopicSpec
	for _, n := range []string{"inferences", "outcomes", "business-metrics"} {
		specs = append(specs, kafkaio.TopicSpec{Name: kopts.Topic(n), Partitions: 1})
	}
	specs = append(specs, kafkaio.Specs(kopts, schemas.TopicFor(schemas.TopicDeadLetters))[0])
	if err := kafkaio.EnsureTopics(ctx, kopts, specs); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "hash.key")
	if err := os.WriteFile(keyFile, []byte("forget-test-key-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	now := time.Now().UTC().Truncate(time.Millisecond)
	produce := func(topic string, values ...string) {
		t.Helper()
		w, err := kafkaio.NewWriter(kopts, topic)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		var msgs []kafka.Message
		for _, v := range values {
			msgs = append(msgs, kafka.Message{Key: []byte("credit-risk"), Value: []byte(v)})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	// Subjects s0…s3: two inferences each (u-N the user segment), the
	// outcome of the first, a business metric in the user's segment and a
	// rejected inference (no prediction) naming the first prediction.
	var infs, outs, metrics []string
	for s := range 4 {
		for j := range 2 {
			infs = append(infs, fmt.Sprintf(`{"event_id":"e%d-%d","model_id":"credit-risk","model_version":"v1","prediction_id":"p%d-%d","timestamp":%d,"features":{"age":%d},"prediction":{"score":0.5},"segment":{"user":"u-%d"}}`,
				s, j, s, j, now.Add(-time.Duration(s*10+j)*time.Second).UnixMilli(), 30+s, s))
		}
		infs = append(infs, fmt.Sprintf(`{"event_id":"bad%d","model_id":"credit-risk","model_version":"v1","prediction_id":"p%d-0","timestamp":%d,"features":{"age":1},"segment":{"user":"u-%d"}}`,
			s, s, now.UnixMilli(), s))
		outs = append(outs, fmt.Sprintf(`{"event_id":"o%d","model_id":"credit-risk","prediction_id":"p%d-0","timestamp":%d,"actual":{"label":"yes"}}`, s, s, now.UnixMilli()))
		metrics = append(metrics, fmt.Sprintf(`{"event_id":"b%d","metric":"revenue","value":1,"timestamp":%d,"model_id":"credit-risk","segment":{"user":"u-%d"}}`, s, now.UnixMilli(), s))
	}
	produce("inferences", infs...)
	produce("outcomes", outs...)
	produce("business-metrics", metrics...)

	ing, err := ingest.New(ingest.Options{Kafka: kopts, Conn: conn, Registerer: prometheus.NewRegistry(),
		Settings: ingest.Settings{ConsumerGroup: "g", BatchRows: 100, BatchAge: 200 * time.Millisecond,
			Models:              map[string]ingest.ModelSettings{"*": {Personal: map[string]string{"user": "hash"}}},
			PersonalHashKeyFile: keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ing.Run(rctx) }()
	count := func(q string) uint64 {
		t.Helper()
		var n uint64
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	deadline := time.Now().Add(90 * time.Second)
	for count("SELECT count() FROM inferences") < 8 || count("SELECT count() FROM outcomes") < 4 || count("SELECT count() FROM business_metrics") < 4 || count("SELECT count() FROM dead_letters") < 4 {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for ingest")
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("ingest: %v", err)
	}
	ing.Close()

	// Each subject's first prediction was handed out for labelling.
	for s := range 4 {
		if err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO labeling_queue (model_id, prediction_id, event_id, batch_id, assignee, strategy, stratum, handed_out_at)
			VALUES ('credit-risk', 'p%d-0', 'e%d-0', 'b', 'ana', 'uncertainty', 'random', now64(3))`, s, s)); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"DRIFTWATCH_CLICKHOUSE_URL": testdb.URL(t, db)}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := command.Main(args, command.Env{Stdout: &out, Stderr: &errb, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}, Commands())
		return code, out.String(), errb.String()
	}
	// rows counts subject s's rows in every table that holds events.
	rows := func(s int) map[string]uint64 {
		return map[string]uint64{
			"inferences":         count(fmt.Sprintf("SELECT count() FROM inferences WHERE startsWith(event_id, 'e%d-')", s)),
			"outcomes":           count(fmt.Sprintf("SELECT count() FROM outcomes WHERE prediction_id = 'p%d-0'", s)),
			"labeling_queue":     count(fmt.Sprintf("SELECT count() FROM labeling_queue WHERE prediction_id = 'p%d-0'", s)),
			"inferences_labeled": count(fmt.Sprintf("SELECT count() FROM inferences_labeled WHERE prediction_id = 'p%d-0'", s)),
			"business_metrics":   count(fmt.Sprintf("SELECT count() FROM business_metrics WHERE event_id = 'b%d'", s)),
			"dead_letters":       count(fmt.Sprintf("SELECT count() FROM dead_letters WHERE JSONExtractString(payload, 'event_id') = 'bad%d'", s)),
		}
	}
	full := fmt.Sprint(map[string]uint64{"inferences": 2, "outcomes": 1, "labeling_queue": 1, "inferences_labeled": 1, "business_metrics": 1, "dead_letters": 1})
	for s := range 4 {
		if got := fmt.Sprint(rows(s)); got != full {
			t.Fatalf("subject %d before forget: %s, want %s", s, got, full)
		}
	}

	// Incremental-window partials (version 1) of the bucket holding e0-0,
	// which the first forget below must delete, and of a bucket a day
	// before, which it must leave.
	for _, ago := range []string{"", " - INTERVAL 1 DAY"} {
		for _, sql := range []string{
			"INSERT INTO window_partial_buckets (model_id, profile_key, bucket_start, bucket_seconds, version, rows, newest_ingested_at) SELECT model_id, 7, toStartOfMinute(timestamp)%[1]s, 60, 1, 1, now64(3) FROM inferences WHERE event_id = 'e0-0'",
			"INSERT INTO window_partial_bins (model_id, profile_key, bucket_start, bucket_seconds, version, feature, bin, n, out_of_range, sample_bound, sample_h, sample_v) SELECT model_id, 7, toStartOfMinute(timestamp)%[1]s, 60, 1, 'age', 0, 1, 0, 1, [0.5], [30] FROM inferences WHERE event_id = 'e0-0'",
			"INSERT INTO window_partial_categories (model_id, profile_key, bucket_start, bucket_seconds, version, feature, category, n) SELECT model_id, 7, toStartOfMinute(timestamp)%[1]s, 60, 1, '__label', 'yes', 1 FROM inferences WHERE event_id = 'e0-0'",
		} {
			if err := conn.Exec(ctx, fmt.Sprintf(sql, ago)); err != nil {
				t.Fatal(err)
			}
		}
	}
	partials := func() string {
		return fmt.Sprint(count("SELECT count() FROM window_partial_buckets"), count("SELECT count() FROM window_partial_bins"), count("SELECT count() FROM window_partial_categories"))
	}

	// A dry run deletes nothing.
	if code, out, errs := run("forget", "-prediction-id", "p0-0", "-dry-run"); code != 0 || !strings.Contains(out, "dry run") {
		t.Fatalf("forget -dry-run: exit %d, %q, %q", code, out, errs)
	}
	if got := fmt.Sprint(rows(0)); got != full {
		t.Errorf("after a dry run subject 0 has %s", got)
	}
	if got := partials(); got != "2 2 2" {
		t.Errorf("after a dry run the partials' tables hold %s rows, want 2 each", got)
	}

	for _, c := range []struct {
		subject int
		args    []string
		// leftover: rows of the subject that the subject's key does not
		// reach (a prediction id names one of its two inferences; the
		// business metric has no prediction id).
		leftover map[string]uint64
		want     []string
	}{
		{0, []string{"-prediction-id", "p0-0"}, map[string]uint64{"inferences": 1, "business_metrics": 1},
			[]string{"outcomes 1 0 1", "labeling_queue 1 0 1", "inferences 1 0 1", "inferences_labeled 1 0 1 (view)", "dead_letters 1 0 1",
				"window_partial_buckets 1 0 1", "window_partial_bins 1 0 1", "window_partial_categories 1 0 1"}},
		{1, []string{"-event-id", "e1-0"}, map[string]uint64{"inferences": 1, "business_metrics": 1, "dead_letters": 1},
			[]string{"outcomes 1 0 1", "labeling_queue 1 0 1", "inferences 1 0 1", "business_metrics 0 0 0"}},
		{2, []string{"-segment", "user=u-2", "-personal-hash-key-file", keyFile}, map[string]uint64{},
			[]string{"outcomes 1 0 1", "labeling_queue 1 0 1", "inferences 2 0 2", "business_metrics 1 0 1", "dead_letters 1 0 1"}},
	} {
		t.Run(strings.Join(c.args[:2], " "), func(t *testing.T) {
			code, out, errs := run(append([]string{"forget"}, c.args...)...)
			if code != 0 {
				t.Fatalf("forget: exit %d, stdout %q, stderr %q", code, out, errs)
			}
			t.Logf("driftwatch forget %s:\n%s", strings.Join(c.args, " "), out)
			for _, w := range c.want {
				if !strings.Contains(columns(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for table, n := range rows(c.subject) {
				if n != c.leftover[table] {
					t.Errorf("subject %d: %d rows left in %s, want %d", c.subject, n, table, c.leftover[table])
				}
			}
			// The day-old bucket's partials stay.
			if got := partials(); got != "1 1 1" {
				t.Errorf("the partials' tables hold %s rows, want the other bucket's 1 each", got)
			}
			// Subject 3 is never forgotten.
			if got := fmt.Sprint(rows(3)); got != full {
				t.Errorf("untouched subject 3 has %s, want %s", got, full)
			}
		})
	}
	// Without the key the hashed segment value matches nothing.
	if code, out, _ := run("forget", "-segment", "user=u-3"); code != 0 || !strings.Contains(columns(out), "inferences 0 0 0") {
		t.Errorf("forget a hashed segment without the key: exit %d, %q", code, out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "give exactly one subject"},
		{[]string{"-event-id", "e", "-prediction-id", "p"}, "give exactly one subject"},
		{[]string{"-segment", "user"}, `segment: "user" is not key=value`},
	} {
		if code, _, errs := run(append([]string{"forget"}, c.args...)...); code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("forget %v: exit %d, stderr %q; want %q", c.args, code, errs, c.want)
		}
	}
}

// columns is out with every run of spaces one space: the table's column
// widths depend on the longest table name printed.
func columns(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}
