package window

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/monitor/stat"
)

func openDB(t *testing.T) driver.Conn {
	t.Helper()
	conn, _ := testdb.Open(t, "window_test")
	return conn
}

// TestComputeMatchesGo inserts rows with known values and checks that the
// aggregates ClickHouse computes equal the same aggregates computed in Go
// from the raw rows with package stat.
func TestComputeMatchesGo(t *testing.T) {
	conn := openDB(t)
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	ref := Span{Start: t0, End: t0.Add(time.Hour)}
	cur := Span{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}
	type row struct {
		ts      time.Time
		a, b    float64
		hasB    bool
		color   string
		score   float64
		label   string
		version string
	}
	var rows []row
	for i := 0; i < 3000; i++ {
		inCur := i >= 1500
		r := row{ts: t0.Add(time.Duration(i) * 2400 * time.Millisecond), version: "v1"}
		r.a = rng.NormFloat64()
		if inCur {
			r.a += 0.5
		}
		r.a = float64(int(r.a*100)) / 100 // ties
		r.b, r.hasB = float64(rng.IntN(5)), rng.Float64() > 0.1
		r.color = []string{"red", "green", "blue"}[rng.IntN(3)]
		if inCur && rng.Float64() < 0.1 {
			r.color = "purple" // unseen in the reference
		}
		r.score = rng.Float64()
		r.label = map[bool]string{true: "yes", false: "no"}[r.score > 0.5]
		rows = append(rows, r)
	}
	// Rows of another model and outside both windows must not count.
	var vals []string
	for i, r := range rows {
		num := fmt.Sprintf("{'a':%g}", r.a)
		if r.hasB {
			num = fmt.Sprintf("{'a':%g,'b':%g}", r.a, r.b)
		}
		vals = append(vals, fmt.Sprintf("('e%d','m1','%s','p%d','%s',%s,{'color':'%s'},[],'%s',%g,NULL,{},{},NULL,'t',0,%d,now64(3))",
			i, r.version, i, r.ts.Format("2006-01-02 15:04:05.000"), num, r.color, r.label, r.score, i))
	}
	vals = append(vals, fmt.Sprintf("('x1','m2','v1','p','%s',{'a':100},{},[],'no',0.1,NULL,{},{},NULL,'t',0,1,now64(3))", t0.Add(time.Minute).Format("2006-01-02 15:04:05.000")),
		fmt.Sprintf("('x2','m1','v1','p','%s',{'a':100},{},[],'no',0.1,NULL,{},{},NULL,'t',0,1,now64(3))", t0.Add(-time.Minute).Format("2006-01-02 15:04:05.000")))
	if err := conn.Exec(context.Background(), "INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, missing_features, prediction_label, prediction_score, prediction_value, prediction_probabilities, segment, latency_ms, kafka_topic, kafka_partition, kafka_offset, ingested_at) VALUES "+strings.Join(vals, ",")); err != nil {
		t.Fatal(err)
	}

	snap, err := Compute(context.Background(), conn, "m1", ref, cur, Options{Samples: true})
	if err != nil {
		t.Fatal(err)
	}
	if snap.RefRows != 1500 || snap.CurRows != 1500 {
		t.Fatalf("rows = %d/%d, want 1500/1500", snap.RefRows, snap.CurRows)
	}
	pick := func(get func(row) (float64, bool), span Span) []float64 {
		var out []float64
		for _, r := range rows {
			if v, ok := get(r); ok && span.Contains(r.ts) {
				out = append(out, v)
			}
		}
		return out
	}
	numeric := map[string]func(row) (float64, bool){
		"a":          func(r row) (float64, bool) { return r.a, true },
		"b":          func(r row) (float64, bool) { return r.b, r.hasB },
		ScoreFeature: func(r row) (float64, bool) { return r.score, true },
	}
	if len(snap.Numeric) != 3 {
		t.Fatalf("numeric features %d, want 3", len(snap.Numeric))
	}
	for _, n := range snap.Numeric {
		get := numeric[n.Feature]
		refS, _ := stat.NewSample(pick(get, ref))
		curS, _ := stat.NewSample(pick(get, cur))
		edges, err := stat.QuantileEdges(refS, 10)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(edges) != fmt.Sprint(n.Edges) {
			t.Errorf("%s: edges %v, Go %v", n.Feature, n.Edges, edges)
		}
		if fmt.Sprint(stat.BinCounts(edges, refS)) != fmt.Sprint(n.RefBins) || fmt.Sprint(stat.BinCounts(edges, curS)) != fmt.Sprint(n.CurBins) {
			t.Errorf("%s: bins %v %v, Go %v %v", n.Feature, n.RefBins, n.CurBins, stat.BinCounts(edges, refS), stat.BinCounts(edges, curS))
		}
		if n.RefN != refS.N() || n.CurN != curS.N() {
			t.Errorf("%s: n %d/%d, Go %d/%d", n.Feature, n.RefN, n.CurN, refS.N(), curS.N())
		}
		// The samples are the windows themselves (below the cap): KS on
		// them equals KS on the raw rows.
		ksCH, err1 := stat.KS(stat.Sample{Values: n.RefValues, Counts: n.RefCounts}, stat.Sample{Values: n.CurValues, Counts: n.CurCounts})
		ksGo, err2 := stat.KS(refS, curS)
		if err1 != nil || err2 != nil || ksCH.Value != ksGo.Value || ksCH.PValue != ksGo.PValue {
			t.Errorf("%s: KS %+v (%v), Go %+v (%v)", n.Feature, ksCH, err1, ksGo, err2)
		}
		var out int64
		for _, v := range curS.Values {
			if v < refS.Values[0] || v > refS.Values[len(refS.Values)-1] {
				out++
			}
		}
		if n.CurOutOfRange != out {
			t.Errorf("%s: out of range %d, Go %d", n.Feature, n.CurOutOfRange, out)
		}
	}
	for _, c := range snap.Categorical {
		want := map[string][2]int64{}
		for _, r := range rows {
			v := r.color
			if c.Feature == LabelFeature {
				v = r.label
			}
			x := want[v]
			if ref.Contains(r.ts) {
				x[0]++
			} else if cur.Contains(r.ts) {
				x[1]++
			}
			want[v] = x
		}
		for i, cat := range c.Categories {
			if got := [2]int64{c.RefCounts[i], c.CurCounts[i]}; got != want[cat] {
				t.Errorf("%s=%s: counts %v, want %v", c.Feature, cat, got, want[cat])
			}
		}
		if len(c.Categories) != len(want) {
			t.Errorf("%s: categories %v, want %v", c.Feature, c.Categories, want)
		}
	}
	// Above the cap the samples are a Bernoulli sample of about SampleCap
	// rows of the window: ascending, drawn from the window's values, the
	// same on a second run; bins and counts stay exact.
	capped, err := Compute(context.Background(), conn, "m1", ref, cur, Options{Samples: true, SampleCap: 500})
	if err != nil {
		t.Fatal(err)
	}
	again, err := Compute(context.Background(), conn, "m1", ref, cur, Options{Samples: true, SampleCap: 500})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range capped.Numeric {
		get := numeric[n.Feature]
		for w, s := range []struct {
			span    Span
			values  []float64
			counts  []int64
			sampled bool
			n       int64
		}{{ref, n.RefValues, n.RefCounts, n.SampledRef, n.RefN}, {cur, n.CurValues, n.CurCounts, n.SampledCur, n.CurN}} {
			in := map[float64]int64{}
			for _, v := range pick(get, s.span) {
				in[v]++
			}
			var rows int64
			for j, v := range s.values {
				rows += s.counts[j]
				if j > 0 && !(s.values[j-1] < v) {
					t.Errorf("%s window %d: sample not ascending at %d", n.Feature, w, j)
				}
				if s.counts[j] > in[v] {
					t.Errorf("%s window %d: %g sampled %d times, the window has it %d times", n.Feature, w, v, s.counts[j], in[v])
				}
			}
			if !s.sampled || rows < 350 || rows > 650 {
				t.Errorf("%s window %d: %d of %d rows sampled (sampled=%v), want about 500", n.Feature, w, rows, s.n, s.sampled)
			}
		}
		if fmt.Sprint(n.RefBins, n.CurBins) != fmt.Sprint(snap.Numeric[i].RefBins, snap.Numeric[i].CurBins) {
			t.Errorf("%s: capped bins %v %v, uncapped %v %v", n.Feature, n.RefBins, n.CurBins, snap.Numeric[i].RefBins, snap.Numeric[i].CurBins)
		}
		if fmt.Sprint(n.CurValues, n.CurCounts) != fmt.Sprint(again.Numeric[i].CurValues, again.Numeric[i].CurCounts) {
			t.Errorf("%s: the sample differs between two runs", n.Feature)
		}
	}
	t.Logf("numeric a: edges %v ref %v cur %v; cats %+v", snap.Numeric[0].Edges, snap.Numeric[0].RefBins, snap.Numeric[0].CurBins, snap.Categorical)
	if len(snap.Categorical) != 2 {
		t.Errorf("categorical features %d, want 2", len(snap.Categorical))
	}

	// A cached reference gives the same snapshot as reading both windows,
	// for this current window and for one slid by 10 minutes, with samples
	// capped and categories cut to "__other" too.
	ctx := context.Background()
	for _, opts := range []Options{{Samples: true}, {Samples: true, SampleCap: 500, MaxCategories: 2}} {
		full, refAgg, err := ComputeCached(ctx, conn, "m1", ref, cur, opts, nil)
		if err != nil || refAgg == nil {
			t.Fatalf("ComputeCached: %v, reference %v", err, refAgg)
		}
		for _, c := range []Span{cur, {Start: cur.Start.Add(10 * time.Minute), End: cur.End.Add(10 * time.Minute)}} {
			want := full
			if c != cur {
				if want, err = Compute(ctx, conn, "m1", ref, c, opts); err != nil {
					t.Fatal(err)
				}
			}
			got, again, err := ComputeCached(ctx, conn, "m1", ref, c, opts, refAgg)
			if err != nil {
				t.Fatal(err)
			}
			if again != refAgg {
				t.Errorf("options %+v, current %v: the cached reference was not used", opts, c)
			}
			if !reflect.DeepEqual(withoutSummaries(got), withoutSummaries(want)) {
				t.Errorf("options %+v, current %v: cached snapshot\n%+v\nwant\n%+v", opts, c, got, want)
			}
		}
		// Another span or options: not used.
		if _, other, err := ComputeCached(ctx, conn, "m1", ref, cur, Options{Samples: true, Bins: 5}, refAgg); err != nil || other == refAgg {
			t.Errorf("a reference cached with other options was reused (%v)", err)
		}
	}

	// An event ingested late into the reference invalidates the cache.
	_, refAgg, err := ComputeCached(ctx, conn, "m1", ref, cur, Options{Samples: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, missing_features, prediction_label, prediction_score, prediction_value, prediction_probabilities, segment, latency_ms, kafka_topic, kafka_partition, kafka_offset, ingested_at) VALUES "+
		fmt.Sprintf("('late','m1','v1','p','%s',{'a':50},{'color':'gold'},[],'no',0.2,NULL,{},{},NULL,'t',0,9,now64(3))", ref.Start.Add(time.Minute).Format("2006-01-02 15:04:05.000"))); err != nil {
		t.Fatal(err)
	}
	want, err := Compute(ctx, conn, "m1", ref, cur, Options{Samples: true})
	if err != nil {
		t.Fatal(err)
	}
	got, fresh, err := ComputeCached(ctx, conn, "m1", ref, cur, Options{Samples: true}, refAgg)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == refAgg || !reflect.DeepEqual(withoutSummaries(got), withoutSummaries(want)) || got.RefRows != 1501 {
		t.Errorf("after a late reference event: cache reused %v, snapshot equal %v, reference rows %d", fresh == refAgg, reflect.DeepEqual(withoutSummaries(got), withoutSummaries(want)), got.RefRows)
	}
}

func TestNoReference(t *testing.T) {
	conn := openDB(t)
	now := time.Now().UTC()
	_, err := Compute(context.Background(), conn, "nobody", Span{Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour)}, Span{Start: now.Add(-time.Hour), End: now}, Options{})
	if err != ErrNoReference {
		t.Errorf("err = %v, want ErrNoReference", err)
	}
}

func TestDecodeFloats(t *testing.T) {
	enc := func(n uint64, vals ...float64) string {
		b := binary.AppendUvarint(nil, n)
		for _, v := range vals {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		return string(b)
	}
	big := make([]float64, 300) // a two-byte varint count
	for i := range big {
		big[i] = float64(i) - 0.5
	}
	for _, tc := range []struct {
		name  string
		state string
		want  []float64
		bad   bool
	}{
		{"empty", enc(0), []float64{}, false},
		{"values with zeros", enc(3, -1.5, 0, 0), []float64{-1.5, 0, 0}, false},
		{"two-byte count", enc(300, big...), big, false},
		{"count too high", enc(4, 1, 2, 3), nil, true},
		{"trailing bytes", enc(1, 1) + "x", nil, true},
		{"no count", "", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeFloats(tc.state)
			if tc.bad {
				if err == nil {
					t.Fatalf("decodeFloats accepted %d bytes", len(tc.state))
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("decodeFloats = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestCategoriesFolded: a feature with 40 skewed categories and one with a
// value unique per row, MaxCategories 5. ClickHouse keeps, per feature, the
// 5 most frequent categories in both windows together (ties by category)
// and sums the rest into __other, with the distinct values of the windows
// — as computed here in Go from the rows. A cached reference gives the
// same snapshot; a pinned (persisted) one, whose rows cannot be read
// again, keeps the counts exact and estimates the distinct values from
// above.
func TestCategoriesFolded(t *testing.T) {
	conn := openDB(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	ref := Span{Start: t0, End: t0.Add(time.Hour)}
	cur := Span{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}
	const n = 4000 // rows per window
	// tier: category number^2 % 1601 / 40 in the reference, shifted by 3 in
	// the current window, so both share most but not all categories.
	if err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_categorical, ingested_at) "+
		"SELECT toString(number), 'm', '1', '', %s + toIntervalMillisecond(number * 900), "+
		"map('tier', concat('t', toString(intDiv((number %% %d) * (number %% %d) %% 1601, 40) + if(number >= %d, 3, 0))), 'uid', concat('u', toString(number))), now64(3) FROM numbers(%d)",
		chsql.Time(t0), n, n, n, 2*n)); err != nil {
		t.Fatal(err)
	}
	type counts struct{ r, c int64 }
	want := map[string]map[string]counts{"tier": {}, "uid": {}}
	for i := range 2 * n {
		isCur := i >= n
		add := func(f, v string) {
			x := want[f][v]
			if isCur {
				x.c++
			} else {
				x.r++
			}
			want[f][v] = x
		}
		tier := (i % n) * (i % n) % 1601 / 40
		if isCur {
			tier += 3
		}
		add("tier", fmt.Sprintf("t%d", tier))
		add("uid", fmt.Sprintf("u%d", i))
	}
	opts := Options{MaxCategories: 5}
	full, refAgg, err := ComputeCached(ctx, conn, "m", ref, cur, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, s *Snapshot, exact bool) {
		t.Helper()
		if len(s.Categorical) != 2 {
			t.Fatalf("%s: %d categorical features, want 2", what, len(s.Categorical))
		}
		for _, c := range s.Categorical {
			cats := want[c.Feature]
			names := make([]string, 0, len(cats))
			var refD, curD int64
			for v, x := range cats {
				names = append(names, v)
				if x.r > 0 {
					refD++
				}
				if x.c > 0 {
					curD++
				}
			}
			slices.SortFunc(names, func(a, b string) int {
				if d := (cats[b].r + cats[b].c) - (cats[a].r + cats[a].c); d != 0 {
					return int(d)
				}
				return strings.Compare(a, b)
			})
			var other counts
			for _, v := range names[5:] {
				other.r, other.c = other.r+cats[v].r, other.c+cats[v].c
			}
			wantCats := append(slices.Clone(names[:5]), OtherCategory)
			if !exact {
				// Merged from the two windows' kept categories: the
				// totals hold, not every category's counts.
				var r, cu int64
				for i := range c.Categories {
					r, cu = r+c.RefCounts[i], cu+c.CurCounts[i]
				}
				if len(c.Categories) != 6 || c.Categories[5] != OtherCategory || r != n || cu != n || c.RefN != n || c.CurN != n || !c.Folded ||
					c.RefDistinct != refD || c.CurDistinct != curD || c.Distinct < int64(len(names)) {
					t.Errorf("%s %s: categories %v with %d/%d rows (want 5 and __other, %d each), folded %v, distinct %d (%d/%d), want at least %d (%d/%d)",
						what, c.Feature, c.Categories, r, cu, n, c.Folded, c.Distinct, c.RefDistinct, c.CurDistinct, len(names), refD, curD)
				}
				continue
			}
			if !slices.Equal(c.Categories, wantCats) {
				t.Errorf("%s %s: categories %v, want %v", what, c.Feature, c.Categories, wantCats)
				continue
			}
			for i, v := range names[:5] {
				if c.RefCounts[i] != cats[v].r || c.CurCounts[i] != cats[v].c {
					t.Errorf("%s %s=%s: counts %d/%d, want %d/%d", what, c.Feature, v, c.RefCounts[i], c.CurCounts[i], cats[v].r, cats[v].c)
				}
			}
			if c.RefCounts[5] != other.r || c.CurCounts[5] != other.c || c.RefN != n || c.CurN != n || !c.Folded {
				t.Errorf("%s %s: __other %d/%d, want %d/%d; rows %d/%d, want %d; folded %v", what, c.Feature, c.RefCounts[5], c.CurCounts[5], other.r, other.c, c.RefN, c.CurN, n, c.Folded)
			}
			if c.RefDistinct != refD || c.CurDistinct != curD || c.Distinct != int64(len(names)) {
				t.Errorf("%s %s: distinct %d (%d/%d), want %d (%d/%d)", what, c.Feature, c.Distinct, c.RefDistinct, c.CurDistinct, len(names), refD, curD)
			}
		}
	}
	check("both windows read", full, true)
	cached, again, err := ComputeCached(ctx, conn, "m", ref, cur, opts, refAgg)
	if err != nil || again != refAgg || !reflect.DeepEqual(withoutSummaries(cached), withoutSummaries(full)) {
		t.Errorf("cached reference: snapshot equal %v, reference reused %v, %v", reflect.DeepEqual(withoutSummaries(cached), withoutSummaries(full)), again == refAgg, err)
	}
	blob, err := refAgg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := Unmarshal(blob)
	if err != nil {
		t.Fatal(err)
	}
	got, used, err := ComputeCached(ctx, conn, "m", ref, cur, opts, pinned)
	if err != nil || used != pinned {
		t.Fatalf("pinned reference: used %v, %v", used == pinned, err)
	}
	check("pinned reference", got, false)
}

// withoutSummaries is a copy of s without its reference summaries
// (Numeric.RefSummary): memos of the reference, which a cached reference
// carries and a fresh one does not.
func withoutSummaries(s *Snapshot) *Snapshot {
	if s == nil {
		return nil
	}
	c := *s
	c.Numeric = slices.Clone(s.Numeric)
	for i := range c.Numeric {
		c.Numeric[i].RefSummary = nil
	}
	return &c
}
