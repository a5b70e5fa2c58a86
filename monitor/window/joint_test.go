package window

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/driftwatch/driftwatch/internal/testcheck"
)

// TestJointSample checks the joint sample against the inserted rows: with
// JointRows above the windows' rows every row comes back whole (a missing
// feature NaN), each value with the others of its event; below, about
// JointRows rows, the same ones from the cached reference, its profile
// and a second read.
func TestJointSample(t *testing.T) {
	conn := openDB(t)
	rng := rand.New(rand.NewPCG(7, 8))
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	ref := Span{Start: t0, End: t0.Add(time.Hour)}
	cur := Span{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}
	const n = 4000
	// b = 1000·a + i, so a joined row is recognisable: a and b of one
	// event, c missing in every 7th.
	want := map[[2]float64]float64{} // (a, b) → c (NaN when missing)
	var vals []string
	for i := 0; i < n; i++ {
		ts := t0.Add(time.Duration(i) * 1800 * time.Millisecond)
		a := math.Round(rng.NormFloat64()*1000) / 1000
		b := 1000*a + float64(i)
		c := rng.Float64()
		num := fmt.Sprintf("{'a':%g,'b':%g,'c':%g}", a, b, c)
		if i%7 == 0 {
			num, c = fmt.Sprintf("{'a':%g,'b':%g}", a, b), math.NaN()
		}
		want[[2]float64{a, b}] = c
		// Categorical g is g<i mod 3> (missing in every 5th event), k
		// is k<i mod 2>: the row's i is b − 1000·a.
		cat := fmt.Sprintf("{'g':'g%d','k':'k%d'}", i%3, i%2)
		if i%5 == 0 {
			cat = fmt.Sprintf("{'k':'k%d'}", i%2)
		}
		vals = append(vals, fmt.Sprintf("('e%d','j1','v1','p%d','%s',%s,%s,[],'no',0.5,NULL,{},{},NULL,'t',0,%d,now64(3))",
			i, i, ts.Format("2006-01-02 15:04:05.000"), num, cat, i))
	}
	if err := conn.Exec(context.Background(), "INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, missing_features, prediction_label, prediction_score, prediction_value, prediction_probabilities, segment, latency_ms, kafka_topic, kafka_partition, kafka_offset, ingested_at) VALUES "+strings.Join(vals, ",")); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, j *Joint, rows int) {
		t.Helper()
		if j == nil {
			t.Fatal("no joint sample")
		}
		if strings.Join(j.Features, ",") != "a,b,c" {
			t.Fatalf("features %v, want a,b,c (no score)", j.Features)
		}
		if rows > 0 && len(j.Rows) != rows {
			t.Fatalf("%d rows, want %d", len(j.Rows), rows)
		}
		// The snapshot's order of categorical features: the most frequent
		// in the reference first (g is missing in every 5th event).
		if strings.Join(j.Categorical, ",") != "k,g" || len(j.Categories) != len(j.Rows) {
			t.Fatalf("categorical %v with %d rows of categories for %d rows, want k,g (no label) on every row", j.Categorical, len(j.Categories), len(j.Rows))
		}
		for k, r := range j.Rows {
			i := int(math.Round(r[1] - 1000*r[0]))
			g := fmt.Sprintf("g%d", i%3)
			if i%5 == 0 {
				g = ""
			}
			if got := j.Categories[k]; got[1] != g || got[0] != fmt.Sprintf("k%d", i%2) {
				t.Fatalf("row %v (event %d): categories %v, want [k%d %s]", r, i, got, i%2, g)
			}
			c, ok := want[[2]float64{r[0], r[1]}]
			if !ok {
				t.Fatalf("row %v: no event has this a and b", r)
			}
			if math.IsNaN(c) != math.IsNaN(r[2]) || (!math.IsNaN(c) && c != r[2]) {
				t.Fatalf("row %v: c = %v, want %v", r, r[2], c)
			}
		}
	}
	t.Run("all rows", func(t *testing.T) {
		// Blocks of 64 rows on 4 threads: the hashes and the values of a
		// feature are two aggregates, each merged from the threads'
		// states; they must stay in one order.
		ctx := clickhouse.Context(context.Background(), clickhouse.WithSettings(clickhouse.Settings{"max_block_size": 64, "max_threads": 4}))
		snap, err := Compute(ctx, conn, "j1", ref, cur, Options{Samples: true, JointRows: 10_000, JointCategories: true})
		if err != nil {
			t.Fatal(err)
		}
		check(t, snap.RefJoint, 2000)
		check(t, snap.CurJoint, 2000)
	})
	t.Run("sampled", func(t *testing.T) {
		opts := Options{Samples: true, JointRows: 500, JointCategories: true}
		snap, refAgg, err := ComputeCached(context.Background(), conn, "j1", ref, cur, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		check(t, snap.RefJoint, 0)
		check(t, snap.CurJoint, 0)
		// A Bernoulli sample of rate 500/2000: 500 ± a few standard
		// deviations (√(2000·¼·¾) ≈ 19).
		for _, j := range []*Joint{snap.RefJoint, snap.CurJoint} {
			if !testcheck.Between(float64(len(j.Rows)), 400, 600) {
				t.Errorf("joint sample of %d rows, want about 500", len(j.Rows))
			}
		}
		again, _, err := ComputeCached(context.Background(), conn, "j1", ref, cur, opts, refAgg)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(again.RefJoint.Rows, again.RefJoint.Categories) != fmt.Sprint(snap.RefJoint.Rows, snap.RefJoint.Categories) || fmt.Sprint(again.CurJoint.Rows, again.CurJoint.Categories) != fmt.Sprint(snap.CurJoint.Rows, snap.CurJoint.Categories) {
			t.Error("the cached reference or a second read gave another joint sample")
		}
		b, err := refAgg.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		pinned, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		fromProfile, _, err := ComputeCached(context.Background(), conn, "j1", ref, cur, opts, pinned)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(fromProfile.RefJoint.Rows, fromProfile.RefJoint.Categories) != fmt.Sprint(snap.RefJoint.Rows, snap.RefJoint.Categories) {
			t.Error("the persisted profile gave another reference joint sample")
		}
	})
	t.Run("off", func(t *testing.T) {
		snap, err := Compute(context.Background(), conn, "j1", ref, cur, Options{Samples: true})
		if err != nil {
			t.Fatal(err)
		}
		if snap.RefJoint != nil || snap.CurJoint != nil {
			t.Error("joint sample without JointRows")
		}
	})
}
