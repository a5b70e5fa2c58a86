package retrain

import (
	"context"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/testdb"
)

// TestVersionImportanceRoundTrip writes a version with feature importance
// to the registry (embedded ClickHouse, migration 090) and reads it back.
func TestVersionImportanceRoundTrip(t *testing.T) {
	conn, _ := testdb.Open(t, "retrain_importance_test")
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	v := &Version{ModelID: "model-imp", Version: "v1", Status: StatusRejected, Trainer: "builtin", CreatedAt: now,
		FeatureImportance:     map[string]float64{"f0": 0.9, "f1": 0.1, "f2": 0},
		CoefficientImportance: map[string]float64{"f0": 0.8, "f1": 0.2, "f2": 0}}
	if err := WriteVersion(ctx, conn, v); err != nil {
		t.Fatal(err)
	}
	vs, err := ListVersions(ctx, conn, "model-imp")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 {
		t.Fatalf("%d versions, want 1", len(vs))
	}
	for k, want := range v.FeatureImportance {
		if got, ok := vs[0].FeatureImportance[k]; !ok || got != want {
			t.Errorf("feature_importance[%s] = %v (present %v), want %v", k, got, ok, want)
		}
	}
	for k, want := range v.CoefficientImportance {
		if got, ok := vs[0].CoefficientImportance[k]; !ok || got != want {
			t.Errorf("coefficient_importance[%s] = %v (present %v), want %v", k, got, ok, want)
		}
	}
}
