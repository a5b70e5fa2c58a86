package dataset

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/driftwatch/driftwatch/internal/testdb"
)

// TestBuild builds a dataset of n labelled rows (plus unlabelled ones and
// another model's rows, which must be left out) and checks every split:
// row counts, time order, the split boundaries, and — read back by
// ClickHouse's own Parquet reader, an implementation independent of the
// Arrow Go writer — the same rows and values as the view it came from.
func TestBuild(t *testing.T) {
	conn, _ := testdb.Open(t, "dataset_test")
	ctx := context.Background()
	const n = 30000
	// Recent: the tables' TTL (90 days by default) would delete older rows
	// in a background merge while the test reads them.
	to := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	from := to.Add(-10 * time.Hour)
	evalFrom := to.Add(-time.Hour)
	// Row i is at from + i·1.2 s: rows 0..26999 in training, the rest in
	// eval. Every 7th row has no outcome; model "other" has every row too.
	ins := fmt.Sprintf(`INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp,
    features_numeric, features_categorical, missing_features, prediction_score, kafka_topic, kafka_partition, kafka_offset, ingested_at)
SELECT concat(m, '-', toString(number)), m, 'v1', concat('p', toString(number)),
    addMilliseconds(fromUnixTimestamp64Milli(toInt64(%d), 'UTC'), toInt64(number) * 1200),
    map('a', number / 10, 'b', if(number %% 3 = 0, nan, -toFloat64(number))),
    if(number %% 2 = 0, map('c', concat('k', toString(number %% 5))), map()), [], number / %d, 't', 0, toInt64(number), now64(3)
FROM numbers(%d) ARRAY JOIN ['m', 'other'] AS m`, from.UnixMilli(), n, n)
	outs := fmt.Sprintf(`INSERT INTO outcomes (event_id, model_id, prediction_id, timestamp, actual_label, kafka_topic, kafka_partition, kafka_offset, ingested_at)
SELECT concat('o', m, toString(number)), m, concat('p', toString(number)),
    addMilliseconds(fromUnixTimestamp64Milli(toInt64(%d), 'UTC'), toInt64(number) * 1200 + 1000), toString(number %% 2), 't', 0, toInt64(number), now64(3)
FROM numbers(%d) ARRAY JOIN ['m', 'other'] AS m WHERE number %% 7 != 0`, from.UnixMilli(), n)
	for _, q := range []string{ins, outs} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	spec := Spec{ModelID: "m", From: from, EvalFrom: evalFrom, To: to, ChunkRows: 1000, JSONL: true}
	m, err := Build(ctx, conn, spec, dir)
	if err != nil {
		t.Fatal(err)
	}
	labelled := func(lo, hi int) (c int64) {
		for i := lo; i < hi; i++ {
			if i%7 != 0 {
				c++
			}
		}
		return c
	}
	nTrainRange := labelled(0, 27000)
	want := map[string]int64{
		Train:      int64(float64(nTrainRange) * 0.8),
		Validation: int64(float64(nTrainRange)*0.9) - int64(float64(nTrainRange)*0.8),
		Eval:       labelled(27000, n),
	}
	want[Test] = nTrainRange - want[Train] - want[Validation]
	if m.RowsRead != nTrainRange+want[Eval] {
		t.Errorf("rows read %d, want %d", m.RowsRead, nTrainRange+want[Eval])
	}
	var prevLast time.Time
	for _, split := range Splits {
		info := m.Splits[split]
		if info.Rows != want[split] {
			t.Errorf("%s: %d rows, want %d", split, info.Rows, want[split])
		}
		if info.Window.From.Before(prevLast) || info.Window.To.Before(info.Window.From) {
			t.Errorf("%s: window %v..%v overlaps the previous split (ends %v)", split, info.Window.From, info.Window.To, prevLast)
		}
		prevLast = info.Window.To
		if split == Eval && info.Window.From.Before(evalFrom) || split != Eval && !info.Window.To.Before(evalFrom) {
			t.Errorf("%s: window %v..%v on the wrong side of %v", split, info.Window.From, info.Window.To, evalFrom)
		}
		// ClickHouse reads the file and compares it row by row with the
		// view: every row present once with equal values (NaN = NaN).
		var rows, matched, extra uint64
		q := fmt.Sprintf(`SELECT count(), countIf(v.event_id != '' AND
        toString(mapSort(f.features_numeric)) = toString(mapSort(v.features_numeric)) AND f.features_categorical = v.features_categorical AND
        f.timestamp = v.timestamp AND f.prediction_score = v.prediction_score AND f.actual_label = v.actual_label),
    countIf(v.event_id = '')
FROM file('%s', Parquet) AS f
LEFT JOIN (SELECT * FROM inferences_labeled WHERE model_id = 'm') AS v ON f.event_id = v.event_id`, info.Parquet)
		if err := conn.QueryRow(ctx, q).Scan(&rows, &matched, &extra); err != nil {
			t.Fatalf("%s: ClickHouse reading %s: %v", split, info.Parquet, err)
		}
		if int64(rows) != info.Rows || rows != matched || extra != 0 {
			t.Errorf("%s: ClickHouse read %d rows from the Parquet file, %d equal to the view, %d not in it; want %d, all equal", split, rows, matched, extra, info.Rows)
		}
		if filepath.Dir(info.Parquet) != dir || info.JSONL == "" {
			t.Errorf("%s: files %q %q", split, info.Parquet, info.JSONL)
		}
	}

	// Read back through the Arrow reader the trainer uses: same count,
	// time order, and values where they are known.
	var got int64
	var last int64 = math.MinInt64
	for rec, err := range m.Batches(Train)(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		ts := rec.Column(1).(*array.Timestamp)
		num := rec.Column(2).(*array.Map)
		keys, items := num.Keys().(*array.String), num.Items().(*array.Float64)
		for i := 0; i < int(rec.NumRows()); i++ {
			if v := int64(ts.Value(i)); v < last {
				t.Fatalf("train row %d: timestamp %d before %d", got, v, last)
			} else {
				last = v
			}
			idx, err := strconv.Atoi(strings.TrimPrefix(rec.Column(0).(*array.String).Value(i), "m-"))
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := num.ValueOffsets(i)
			for j := lo; j < hi; j++ {
				if keys.Value(int(j)) == "a" && items.Value(int(j)) != float64(idx)/10 {
					t.Fatalf("row %d: a = %v, want %v", idx, items.Value(int(j)), float64(idx)/10)
				}
			}
			got++
		}
	}
	if got != want[Train] {
		t.Errorf("read %d train rows back, want %d", got, want[Train])
	}
	// NaN has no JSON form: JSON Lines carry it as null.
	raw, err := os.ReadFile(m.Splits[Train].JSONL)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(raw), "\n"); int64(lines) != want[Train] || !strings.Contains(string(raw), `"b":null`) {
		t.Errorf("train JSON Lines: %d lines (want %d), NaN as null: %v", lines, want[Train], strings.Contains(string(raw), `"b":null`))
	}
	if _, err := LoadManifest(m.MetadataPath()); err != nil {
		t.Error(err)
	}
}

func TestSpecValidate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		spec Spec
		want string // substring of the error; empty: valid
	}{
		{"valid", Spec{ModelID: "m", From: t0, EvalFrom: t0.Add(time.Hour), To: t0.Add(2 * time.Hour)}, ""},
		{"quote in model", Spec{ModelID: "m'", From: t0, EvalFrom: t0.Add(time.Hour), To: t0.Add(2 * time.Hour)}, "model_id"},
		{"windows reversed", Spec{ModelID: "m", From: t0, EvalFrom: t0, To: t0.Add(time.Hour)}, "windows"},
		{"fractions", Spec{ModelID: "m", From: t0, EvalFrom: t0.Add(time.Hour), To: t0.Add(2 * time.Hour), TrainFraction: 0.95, ValidationFraction: 0.1}, "fractions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}
