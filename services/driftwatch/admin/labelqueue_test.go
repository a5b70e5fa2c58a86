package admin

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/monitor"
)

// TestLabelQueueCommand runs driftwatch label-queue against the real
// monitor service (embedded ClickHouse) holding 10 unlabelled inferences
// of model-7 and 2 labelled ones: 4 rows to a CSV (one column per
// feature, an empty actual_label, mode 0600), then asking for 10 gives
// the other 6 as JSON lines (never a row twice, never a labelled one); a
// read token is refused with a hint, exit 1.
func TestLabelQueueCommand(t *testing.T) {
	conn, db := testdb.Open(t, "cli_labelq")
	ctx := context.Background()
	ts := time.Now().UTC().Add(-time.Hour)
	var vals []string
	for i := range 12 {
		vals = append(vals, fmt.Sprintf("('e%d', 'model-7', 'v1', 'p%d', %s, map('f1', %d.5), map('city', 'c%d'), '1', %v, map('region', 'eu'), 't', 0, %d, %s)",
			i, i, chsql.Time(ts.Add(time.Duration(i)*time.Second)), i, i%3, float64(i)/12, i, chsql.Time(ts)))
	}
	for _, q := range []string{
		"INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, prediction_label, prediction_score, segment, kafka_topic, kafka_partition, kafka_offset, ingested_at) VALUES " + strings.Join(vals, ", "),
		"INSERT INTO outcomes (event_id, model_id, prediction_id, timestamp, actual_label, kafka_topic, kafka_partition, kafka_offset, ingested_at) VALUES ('o1', 'model-7', 'p10', " + chsql.Time(ts) + ", '1', 't', 0, 1, " + chsql.Time(ts) + "), ('o2', 'model-7', 'p11', " + chsql.Time(ts) + ", '0', 't', 0, 2, " + chsql.Time(ts) + ")",
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	base, dir := startMonitor(t, "cli_labelq_service", func(c *monitor.Config) { c.ClickHouseURL = testdb.URL(t, db) })
	env := map[string]string{"DRIFTWATCH_API_TOKEN": "cli-write-token-0123456789"}

	out := filepath.Join(dir, "round1.csv")
	code, stdout, stderr := runCLI(env, "label-queue", "-model", "model-7", "-n", "4", "-assignee", "ana", "-o", out, "-monitor-url", base)
	if code != 0 || !strings.Contains(stdout, "4 rows of model-7") || !strings.Contains(stdout, "to ana") {
		t.Fatalf("label-queue to CSV: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("CSV file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != 5 {
		t.Fatalf("CSV: %d records, %v; want a header and 4 rows", len(recs), err)
	}
	head := recs[0]
	for _, col := range []string{"prediction_id", "stratum", "inclusion_probability", "reasons", "feature.city", "feature.f1", "actual_label"} {
		if !slices.Contains(head, col) {
			t.Errorf("CSV header %v lacks %s", head, col)
		}
	}
	seen := map[string]bool{}
	for _, r := range recs[1:] {
		row := map[string]string{}
		for i, c := range head {
			row[c] = r[i]
		}
		seen[row["prediction_id"]] = true
		if row["actual_label"] != "" || row["feature.f1"] == "" || row["feature.city"] == "" || row["model_id"] != "model-7" {
			t.Errorf("CSV row %v", row)
		}
	}

	code, stdout, stderr = runCLI(env, "label-queue", "-model", "model-7", "-n", "10", "-strategy", "random", "-o", "-", "-monitor-url", base)
	if code != 0 {
		t.Fatalf("label-queue to stdout: exit %d, stderr %q", code, stderr)
	}
	var n int
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var line struct {
			BatchID string `json:"batch_id"`
			monitor.LabelingRow
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("JSON line %q: %v", sc.Text(), err)
		}
		n++
		if seen[line.PredictionID] || line.PredictionID == "p10" || line.PredictionID == "p11" {
			t.Errorf("handed out %s again, or a labelled row", line.PredictionID)
		}
		seen[line.PredictionID] = true
		if line.BatchID == "" || line.Stratum != "random" || !(line.InclusionProbability == 1) {
			t.Errorf("JSON line %+v: want a batch id, stratum random, probability 1 (the whole pool)", line)
		}
	}
	if n != 6 {
		t.Errorf("%d JSON lines, want the 6 rows left", n)
	}

	code, _, stderr = runCLI(map[string]string{"DRIFTWATCH_API_TOKEN": "cli-read-token-0123456789"}, "label-queue", "-model", "model-7", "-monitor-url", base)
	if code != 1 || !strings.Contains(stderr, "403") || !strings.Contains(stderr, "not a write token") {
		t.Errorf("read token: exit %d, stderr %q; want 1 with the write-token hint", code, stderr)
	}
	code, _, stderr = runCLI(env, "label-queue", "-model", "model-7", "-o", "rows.txt", "-strategy", "best")
	if code != 2 || !strings.Contains(stderr, "FILE.jsonl") || !strings.Contains(stderr, "strategy") {
		t.Errorf("bad flags: exit %d, stderr %q; want 2 naming -o and strategy", code, stderr)
	}
}
