package serve

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/driftwatch/driftwatch/retrain/model"
)

// The artifact format as docs/serve.md describes it: its Python loader
// (run by testdata/artifact.py, which also checks it against
// scikit-learn's LogisticRegression) and driftwatch's PredictRow give the
// same scores for testdata/artifact.json, missing values, missing
// indicators, unseen categories and unknown features included.
// Regenerate the golden file with `.deps/venv/bin/python
// retrain/serve/testdata/artifact.py` from the repository root.
func TestArtifactFormatMatchesPythonLoader(t *testing.T) {
	f, err := os.Open("testdata/artifact.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := model.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("testdata/artifact_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Rows   []map[string]any `json:"rows"`
		Scores []float64        `json:"scores"`
	}
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	if len(golden.Rows) == 0 || len(golden.Rows) != len(golden.Scores) {
		t.Fatalf("%d rows, %d scores", len(golden.Rows), len(golden.Scores))
	}
	for i, row := range golden.Rows {
		num, cat := map[string]float64{}, map[string]string{}
		for k, v := range row {
			switch x := v.(type) {
			case float64:
				num[k] = x
			case string:
				cat[k] = x
			}
		}
		if got := m.PredictRow(num, cat); !(math.Abs(got-golden.Scores[i]) <= 1e-12) {
			t.Errorf("row %d %v: PredictRow %v, the documented Python loader %v", i, row, got, golden.Scores[i])
		}
	}
}
