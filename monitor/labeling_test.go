package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/ingest"
	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/monitor/labeling"
)

// queueCall asks the API's labeling queue for rows and decodes the batch.
func queueCall(t *testing.T, m *Monitor, query string) LabelingBatch {
	t.Helper()
	code, out := call(t, m.API(), "GET", "/api/v1/models/model-0/labeling-queue?"+query, "")
	if code != 200 {
		t.Fatalf("labeling queue %s: %d %v", query, code, out)
	}
	raw, _ := json.Marshal(out)
	var b LabelingBatch
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLabelingQueueOverweightsTheDriftedSlice: the segment world with f3
// shifted inside region=eu from +2h, evaluated up to +4h (region=eu's f3
// drifted and sustained), 24,000 unlabelled inferences through Kafka and
// ingest, a third of them in region=eu. Two requests of 200 rows each:
//
//   - the share of region=eu among the queued rows is above its share of
//     the pool (the traffic, 1/3) by at least 0.08: the targeted draw
//     weighs an eu row 4 times (drift_weight) as much at equal
//     uncertainty (and rows of every region in f3's drifted range too),
//     so about 0.55 of the queued rows are eu (0.50–0.61 in runs here);
//   - exactly round(0.2·200) = 40 rows of each are random; every row's
//     weight and inclusion probability are as computed by hand from its
//     uncertainty and reasons;
//   - no prediction_id is handed out twice, and labeling_queue records all
//     400 with their stratum and assignee;
//   - labels sent for the 400 on the outcomes topic (through ingest) reach
//     inferences_labeled, and a later request's pool has 400 rows fewer
//     even when reissue_after no longer holds them back.
func TestLabelingQueueOverweightsTheDriftedSlice(t *testing.T) {
	w, m := segmentWorld(t, "segment_shift:region=eu:f3:1.5@+2h")
	ctx := context.Background()
	for h := 2; h <= 4; h++ {
		if _, err := m.Evaluate(ctx, "model-0", w.start.Add(time.Duration(h)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	total := w.count(t, "SELECT count() FROM inferences FINAL WHERE NOT shadow")
	euRows := w.count(t, "SELECT count() FROM inferences FINAL WHERE NOT shadow AND segment['region'] = 'eu'")
	traffic := float64(euRows) / float64(total)

	seen := map[string]bool{}
	var ids []string
	var labelled []labeling.Labelled // every label sent is "1"
	for i, assignee := range []string{"ana", "ben"} {
		began := time.Now()
		b := queueCall(t, m, "limit=200&assignee="+assignee)
		t.Logf("call %d: 200 rows of a pool of %d in %s", i, b.PoolRows, time.Since(began).Round(time.Millisecond))
		if !slices.Contains(b.Focus, "slice region=eu") {
			t.Errorf("call %d: focus %v, want slice region=eu among it", i, b.Focus)
		}
		if want := total - uint64(200*i); b.PoolRows != want {
			t.Errorf("call %d: pool of %d rows, want %d (every unlabelled row less those handed out)", i, b.PoolRows, want)
		}
		if len(b.Rows) != 200 || b.RandomRows != 40 || b.TargetedRows != 160 || b.Strategy != labeling.Uncertainty {
			t.Fatalf("call %d: %d rows, %d random, %d targeted, strategy %s; want 200, 40, 160, uncertainty", i, len(b.Rows), b.RandomRows, b.TargetedRows, b.Strategy)
		}
		var eu, random int
		pr := 40 / float64(b.PoolRows)
		for _, r := range b.Rows {
			// By hand: the weight is max(u, 0.01), times drift_weight 4 in
			// a drifted slice or range; π = π_r + (1 − π_r)·(1 − exp(−w·τ)).
			want := math.Max(r.Uncertainty, 0.01)
			if slices.ContainsFunc(r.Reasons, func(s string) bool { return strings.HasPrefix(s, "slice ") || strings.HasPrefix(s, "range ") }) {
				want *= 4
			}
			if !testcheck.WithinRel(r.Weight, want, 1e-12, 0) {
				t.Errorf("row %s: weight %v, want %v (reasons %v)", r.PredictionID, r.Weight, want, r.Reasons)
			}
			if b.TargetedThreshold == nil {
				t.Fatalf("call %d: no targeted threshold from a pool of %d", i, b.PoolRows)
			}
			if p := pr + (1-pr)*(1-math.Exp(-r.Weight**b.TargetedThreshold)); !testcheck.WithinRel(r.InclusionProbability, p, 1e-9, 0) {
				t.Errorf("row %s: inclusion probability %v, want %v", r.PredictionID, r.InclusionProbability, p)
			}
			if seen[r.PredictionID] {
				t.Errorf("call %d hands out %s again", i, r.PredictionID)
			}
			seen[r.PredictionID] = true
			ids = append(ids, r.PredictionID)
			right := 0.0
			if r.PredictionLabel != nil && *r.PredictionLabel == "1" {
				right = 1
			}
			labelled = append(labelled, labeling.Labelled{Value: right, InclusionProbability: r.InclusionProbability})
			if r.Segment["region"] == "eu" {
				eu++
			}
			switch r.Stratum {
			case labeling.StratumRandom:
				random++
				if r.Reasons[0] != "random" {
					t.Errorf("random row %s: reasons %v, want random first", r.PredictionID, r.Reasons)
				}
			case labeling.StratumTargeted:
				if !strings.HasPrefix(r.Reasons[0], "uncertainty ") {
					t.Errorf("targeted row %s: reasons %v, want uncertainty first", r.PredictionID, r.Reasons)
				}
				if r.Segment["region"] == "eu" && !slices.Contains(r.Reasons, "slice region=eu") {
					t.Errorf("targeted eu row without the slice among its reasons: %v", r.Reasons)
				}
			default:
				t.Errorf("row %s: stratum %q", r.PredictionID, r.Stratum)
			}
			if r.PredictionScore == nil || len(r.Features) == 0 || r.EventID == "" {
				t.Errorf("row %s lacks its score, features or event id: %+v", r.PredictionID, r)
			}
			// The binary uncertainty: 1 − |score − 0.5| / 0.5.
			if r.PredictionScore != nil && !testcheck.Within(r.Uncertainty, 1-math.Abs(*r.PredictionScore-0.5)/0.5, 1e-9) {
				t.Errorf("row %s: uncertainty %v for score %v", r.PredictionID, r.Uncertainty, *r.PredictionScore)
			}
		}
		if random != 40 {
			t.Errorf("call %d: %d random rows, want 40 (random_share 0.2 of 200)", i, random)
		}
		share := float64(eu) / float64(len(b.Rows))
		t.Logf("call %d: region=eu is %.3f of the queued rows, %.3f of the traffic", i, share, traffic)
		// About 0.55 expected; 0.08 is more than 3 standard deviations
		// (0.035 for 200 rows) below it and still well above the traffic.
		if !testcheck.AtLeast(share, traffic+0.08) {
			t.Errorf("call %d: region=eu is %.3f of the queued rows, want at least its traffic share %.3f + 0.08", i, share, traffic)
		}
	}
	if r, tg := testutil.ToFloat64(m.labelRows.WithLabelValues("random")), testutil.ToFloat64(m.labelRows.WithLabelValues("targeted")); r != 80 || tg != 320 {
		t.Errorf("driftwatch_monitor_labeling_rows_total: random %v, targeted %v; want 80 and 320", r, tg)
	}
	if n := w.count(t, "SELECT uniqExact(prediction_id) FROM labeling_queue"); n != 400 {
		t.Errorf("labeling_queue holds %d prediction ids, want 400", n)
	}
	if n := w.count(t, "SELECT count() FROM labeling_queue WHERE stratum = 'random' AND assignee IN ('ana', 'ben') AND random_share = 0.2"); n != 80 {
		t.Errorf("labeling_queue holds %d random rows of ana and ben, want 80", n)
	}

	// Labels for the queued rows come back on the outcomes topic.
	sendOutcomes(t, w, ids)
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = chsql.String(id)
	}
	if n := w.count(t, "SELECT count() FROM inferences_labeled WHERE NOT shadow AND prediction_id IN ("+strings.Join(quoted, ",")+")"); n != 400 {
		t.Errorf("inferences_labeled holds %d of the 400 queued rows, want all", n)
	}
	// docs/labeling.md's re-weighted accuracy, in ClickHouse, is
	// labeling.Estimate over the same rows.
	var reweighted float64
	if err := w.conn.QueryRow(ctx, `SELECT sum((l.prediction_label = l.actual_label) / q.inclusion_probability) / sum(1 / q.inclusion_probability)
		FROM labeling_queue AS q INNER JOIN inferences_labeled AS l ON l.model_id = q.model_id AND l.prediction_id = q.prediction_id
		WHERE q.model_id = 'model-0' AND q.assignee IN ('ana', 'ben') AND NOT l.shadow`).Scan(&reweighted); err != nil {
		t.Fatal(err)
	}
	if want := labeling.Estimate(labelled); !testcheck.Within(reweighted, want, 1e-9) {
		t.Errorf("re-weighted accuracy in ClickHouse %v, labeling.Estimate %v", reweighted, want)
	}
	// With reissue_after 0 only the labels keep the 400 out.
	s := m.opts.Settings
	s.Labeling.ReissueAfter = 0
	m2, err := New(Options{Settings: s, Conn: w.conn, TriggerWriter: m.opts.TriggerWriter, Registerer: prometheus.NewRegistry(), Now: m.opts.Now})
	if err != nil {
		t.Fatal(err)
	}
	b := queueCall(t, m2, "limit=10&strategy=random")
	if b.PoolRows != total-400 || b.RandomRows != 10 || b.RandomShare != 1 {
		t.Errorf("after the labels: pool %d, %d random rows, share %v; want %d, 10, 1", b.PoolRows, b.RandomRows, b.RandomShare, total-400)
	}
	for _, r := range b.Rows {
		if seen[r.PredictionID] {
			t.Errorf("labelled row %s handed out again", r.PredictionID)
		}
	}
	rec := httptest.NewRecorder()
	m.API().ServeHTTP(rec, httptest.NewRequest("HEAD", "/api/v1/models/model-0/labeling-queue", nil))
	if rec.Code != 405 {
		t.Errorf("HEAD: %d, want 405 (it would hand rows out that nobody receives)", rec.Code)
	}
	for _, q := range []string{"limit=0", "limit=1001", "strategy=best", "limit=x"} {
		if code, out := call(t, m.API(), "GET", "/api/v1/models/model-0/labeling-queue?"+q, ""); code != 400 {
			t.Errorf("%s: %d %v, want 400", q, code, out)
		}
	}
}

// sendOutcomes sends a label for each prediction id to the world's
// outcomes topic and ingests them.
func sendOutcomes(t *testing.T, w *world, ids []string) {
	t.Helper()
	wr, err := kafkaio.NewWriter(w.kopts, "outcomes")
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	ts := w.start.Add(5 * time.Hour).Format(time.RFC3339Nano)
	msgs := make([]kafka.Message, len(ids))
	for i, id := range ids {
		msgs[i] = kafka.Message{Key: []byte("model-0"), Value: fmt.Appendf(nil,
			`{"event_id":"label-%d","model_id":"model-0","prediction_id":%q,"timestamp":%q,"actual":{"label":"1"}}`, i, id, ts)}
	}
	before := w.count(t, "SELECT count() FROM outcomes FINAL")
	if err := wr.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	ing, err := ingest.New(ingest.Options{Kafka: w.kopts, Conn: w.conn, Registerer: prometheus.NewRegistry(), Settings: ingestSettings()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	for deadline := time.Now().Add(2 * time.Minute); w.count(t, "SELECT count() FROM outcomes FINAL") < before+uint64(len(ids)); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("ingest: %d outcomes, want %d", w.count(t, "SELECT count() FROM outcomes FINAL"), before+uint64(len(ids)))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ing.Close()
}

// TestLabelingUncertaintyOnTheEngine evaluates labeling.UncertaintySQL in
// ClickHouse on rows whose uncertainty is computed by hand:
// binary 1 − |s − t| / max(t, 1 − t), multiclass entropy / log K of the
// normalised probabilities, two probabilities 1 − |p₁ − p₂|, a regressor 1.
func TestLabelingUncertaintyOnTheEngine(t *testing.T) {
	conn, _ := testdb.Open(t, "monitor_labeling")
	ctx := context.Background()
	// H(0.5, 0.25, 0.25) = 0.5 ln 2 + 2·0.25 ln 4 = 1.5 ln 2; over ln 3.
	h3 := 1.5 * math.Ln2 / math.Log(3)
	for _, c := range []struct {
		name      string
		threshold float64
		row       string // score, value, probabilities
		want      float64
	}{
		{"score at the threshold", 0.5, "0.5, NULL, map()", 1},
		{"score 0.8 of 0.5", 0.5, "0.8, NULL, map()", 0.4},
		{"score 0 of 0.5", 0.5, "0, NULL, map()", 0},
		{"score 0.2 of threshold 0.3", 0.3, "0.2, NULL, map()", 1 - 0.1/0.7},
		{"score 0.9 of threshold 0.3", 0.3, "0.9, NULL, map()", 1 - 0.6/0.7},
		{"uniform over 3 classes", 0.5, "NULL, NULL, map('a', 0.2, 'b', 0.2, 'c', 0.2)", 1},
		{"3 classes 0.5/0.25/0.25", 0.5, "0.9, NULL, map('a', 0.5, 'b', 0.25, 'c', 0.25)", h3},
		{"one sure class of 3", 0.5, "NULL, NULL, map('a', 1, 'b', 0, 'c', 0)", 0},
		{"two probabilities", 0.5, "NULL, NULL, map('no', 0.7, 'yes', 0.3)", 0.6},
		{"a regressor", 0.5, "NULL, 42.0, map()", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := fmt.Sprintf(`SELECT %s FROM (SELECT CAST(%s AS Nullable(Float64)) AS prediction_score, CAST(%s AS Nullable(Float64)) AS prediction_value,
				CAST(%s AS Map(String, Float64)) AS prediction_probabilities)`, labeling.UncertaintySQL(c.threshold), strings.Split(c.row, ", ")[0], strings.Split(c.row, ", ")[1], strings.Join(strings.Split(c.row, ", ")[2:], ", "))
			var got float64
			if err := conn.QueryRow(ctx, q).Scan(&got); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			if !testcheck.Within(got, c.want, 1e-12) {
				t.Errorf("uncertainty %v, want %v", got, c.want)
			}
		})
	}
}

// TestLabelingDrawMatchesInclusionProbabilities repeats one request 200
// times on a fixed pool of 1,000 inferences (direct inserts; every score
// 0.5, so every uncertainty 1), 100 of them in the drifted slice
// region=eu (a drifted slice verdict row): n = 50, 10 random and 40
// targeted, an eu row weighs 4 and another 1. What re-weighting needs of
// the recorded inclusion probabilities π: the Horvitz–Thompson count
// Σ 1/π of each group's queued rows, averaged over the requests, is the
// group's size (100 and 900) within 6 % (its standard error is about
// 2 %), and the Hájek estimate of eu's share of the pool is its true 0.1
// within 0.015 (standard error about 0.003), where the plain share of the
// queued rows is about 0.26.
func TestLabelingDrawMatchesInclusionProbabilities(t *testing.T) {
	conn, _ := testdb.Open(t, "monitor_labeling_draw")
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Second)
	var vals []string
	for i := range 1000 {
		region := "us"
		if i < 100 {
			region = "eu"
		}
		vals = append(vals, fmt.Sprintf("('e%d', 'm', 'v1', 'p%d', %s, map('f1', 1.0), map(), '1', 0.5, map(), map('region', '%s'), 't', 0, %d, %s)",
			i, i, chsql.Time(base.Add(-time.Hour+time.Duration(i)*time.Millisecond)), region, i, chsql.Time(base)))
	}
	ws, we := chsql.Time(base.Add(-2*time.Hour)), chsql.Time(base.Add(-time.Hour))
	for _, q := range []string{
		"INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, prediction_label, prediction_score, prediction_probabilities, segment, kafka_topic, kafka_partition, kafka_offset, ingested_at) VALUES " + strings.Join(vals, ", "),
		`INSERT INTO drift_results (model_id, model_version, window_start, window_end, reference_start, reference_end, reference_kind, feature, segment, kind, method, value, threshold, drifted, sustained, status, samples) VALUES
			('m', '', ` + ws + `, ` + we + `, ` + ws + `, ` + we + `, 'pinned', 'f1', 'region=eu', 'drift', 'verdict', 1, 1, true, true, 'drifted', 100)`,
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s := testSettings(48*time.Hour, DefaultSettings().Policy, nil)
	s.Labeling.ReissueAfter = time.Second
	calls := 0
	m, err := New(Options{Settings: s, Conn: conn, TriggerWriter: &recordingWriter{}, Registerer: prometheus.NewRegistry(),
		// Each request 2 s after the last: the rows of one are back in
		// the pool for the next (reissue_after 1 s).
		Now: func() time.Time { return base.Add(time.Duration(2*calls) * time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	const runs = 200
	ht := map[string]float64{}
	var hajek, unweighted float64
	for ; calls < runs; calls++ {
		b, err := m.LabelingQueue(ctx, LabelingRequest{Model: "m", N: 50, Strategy: labeling.Uncertainty})
		if err != nil {
			t.Fatal(err)
		}
		if b.PoolRows != 1000 || len(b.Rows) != 50 || b.RandomRows != 10 {
			t.Fatalf("request %d: pool %d, %d rows, %d random; want 1000, 50, 10", calls, b.PoolRows, len(b.Rows), b.RandomRows)
		}
		var est []labeling.Labelled
		eu := 0
		for _, r := range b.Rows {
			ht[r.Segment["region"]] += 1 / r.InclusionProbability / runs
			v := 0.0
			if r.Segment["region"] == "eu" {
				v, eu = 1, eu+1
			}
			est = append(est, labeling.Labelled{Value: v, InclusionProbability: r.InclusionProbability})
		}
		hajek += labeling.Estimate(est) / runs
		unweighted += float64(eu) / 50 / runs
	}
	for region, rows := range map[string]float64{"eu": 100, "us": 900} {
		t.Logf("%s: Horvitz–Thompson count %.1f of %v rows", region, ht[region], rows)
		if !testcheck.WithinRel(ht[region], rows, 0.06, 0) {
			t.Errorf("%s: Σ 1/π of its queued rows is %.1f on average, want its %v rows", region, ht[region], rows)
		}
	}
	t.Logf("eu's share of the pool: Hájek %.4f, unweighted %.4f (true 0.1)", hajek, unweighted)
	if !testcheck.Within(hajek, 0.1, 0.015) || !testcheck.AtLeast(unweighted, 0.2) {
		t.Errorf("eu's share of the pool: Hájek %.4f (want 0.1 ± 0.015), unweighted %.4f (want the over-weighting, ≥ 0.2)", hajek, unweighted)
	}
}
