package window

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/chsql"
)

// TestShadowRowsExcluded: shadow predictions (a challenger scoring the
// same requests, docs/serve.md) do not change the model's snapshot, even
// when they are many and differently distributed; marking the same rows
// as the model's own does (the check can fail).
func TestShadowRowsExcluded(t *testing.T) {
	conn := openDB(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	ref := Span{Start: t0, End: t0.Add(time.Hour)}
	cur := Span{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}
	const n = 2000
	insert := func(prefix, version string, shift float64, shadow bool) {
		t.Helper()
		if err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, prediction_label, prediction_score, shadow, ingested_at) "+
			"SELECT concat(%s, toString(number)), 'm', %s, concat('p', toString(number)), %s + toIntervalMillisecond(number * 3600), "+
			"map('a', (number %% 97) / 10 + %g), map('color', ['red','green','blue'][number %% 3 + 1]), if(number %% 2 = 0, 'yes', 'no'), ((number %% 89) / 89 + %g) / 2, %v, %s FROM numbers(%d)",
			chsql.String(prefix), chsql.String(version), chsql.Time(t0), shift, shift, shadow, chsql.Time(t0), n)); err != nil {
			t.Fatal(err)
		}
	}
	insert("c", "v1", 0, false)
	before, err := Compute(ctx, conn, "m", ref, cur, Options{Samples: true})
	if err != nil {
		t.Fatal(err)
	}
	insert("s", "v2", 0.9, true)
	after, err := Compute(ctx, conn, "m", ref, cur, Options{Samples: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Errorf("shadow rows changed the snapshot:\nbefore %+v\nafter  %+v", before, after)
	}
	// The same rows unmarked are the model's and do change it.
	insert("u", "v2", 0.9, false)
	mixed, err := Compute(ctx, conn, "m", ref, cur, Options{Samples: true})
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(before, mixed) {
		t.Error("unmarked rows did not change the snapshot: the check cannot fail")
	}
}
