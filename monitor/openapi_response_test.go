package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/driftwatch/driftwatch/internal/testdb"
)

// schema is the part of an OpenAPI 3.0 schema object openapi.yaml uses.
type schema struct {
	Ref                  string             `yaml:"$ref"`
	Type                 string             `yaml:"type"`
	Format               string             `yaml:"format"`
	Nullable             bool               `yaml:"nullable"`
	Required             []string           `yaml:"required"`
	Properties           map[string]*schema `yaml:"properties"`
	Items                *schema            `yaml:"items"`
	Enum                 []any              `yaml:"enum"`
	AdditionalProperties *additional        `yaml:"additionalProperties"`
}

// additional is additionalProperties: a boolean or the schema every
// property not listed follows (a map's values).
type additional struct {
	allowed bool
	schema  *schema
}

func (a *additional) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&a.allowed)
	}
	a.allowed, a.schema = true, new(schema)
	return n.Decode(a.schema)
}

type openAPI struct {
	Paths map[string]map[string]struct {
		Responses map[string]struct {
			Ref     string `yaml:"$ref"`
			Content map[string]struct {
				Schema *schema `yaml:"schema"`
			} `yaml:"content"`
		} `yaml:"responses"`
	} `yaml:"paths"`
	Components struct {
		Schemas map[string]*schema `yaml:"schemas"`
	} `yaml:"components"`
}

// validate reports every way v (decoded JSON) differs from s, at path. An
// object may hold only the properties its schema declares, so a field a
// handler adds without documenting it fails too.
func (doc *openAPI) validate(s *schema, v any, path string) []string {
	if s.Ref != "" {
		name := strings.TrimPrefix(s.Ref, "#/components/schemas/")
		ref, ok := doc.Components.Schemas[name]
		if !ok {
			return []string{fmt.Sprintf("%s: unknown $ref %s", path, s.Ref)}
		}
		return doc.validate(ref, v, path)
	}
	if v == nil {
		if s.Nullable || s.Type == "" {
			return nil
		}
		return []string{fmt.Sprintf("%s: null, the schema says %s (not nullable)", path, s.Type)}
	}
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, path+": "+fmt.Sprintf(f, a...)) }
	switch s.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			bad("%T, want an object", v)
			break
		}
		for _, k := range s.Required {
			if _, ok := m[k]; !ok {
				bad("required property %q is missing", k)
			}
		}
		for k, x := range m {
			p, ok := s.Properties[k]
			if !ok {
				ap := s.AdditionalProperties
				switch {
				case ap != nil && ap.schema != nil:
					errs = append(errs, doc.validate(ap.schema, x, path+"."+k)...)
				case s.Properties != nil || (ap != nil && !ap.allowed):
					bad("property %q is not in the schema", k)
				}
				continue
			}
			errs = append(errs, doc.validate(p, x, path+"."+k)...)
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			bad("%T, want an array", v)
			break
		}
		for i, x := range a {
			if s.Items != nil {
				errs = append(errs, doc.validate(s.Items, x, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			bad("%T, want a string", v)
			break
		}
		if s.Format == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				bad("%q is not a date-time", str)
			}
		}
	case "number", "integer":
		f, ok := v.(float64)
		if !ok {
			bad("%T, want a %s", v, s.Type)
			break
		}
		if s.Type == "integer" && f != math.Trunc(f) {
			bad("%v, want an integer", f)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("%T, want a boolean", v)
		}
	case "":
	default:
		bad("schema type %q is not handled by this validator", s.Type)
	}
	if len(s.Enum) > 0 && !slices.ContainsFunc(s.Enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		bad("%v is not one of %v", v, s.Enum)
	}
	return errs
}

// TestOpenAPIResponses: every route the monitor serves answers, on real
// ClickHouse data (a drift, a skipped and data-quality rows, a trigger,
// performance, correlations, a distribution, a dead letter, a training run,
// versions and two unlabelled inferences for the labeling queue), with a body its openapi.yaml response
// schema accepts, property by property; a route openapi.yaml gives no
// JSON schema for its answer fails.
func TestOpenAPIResponses(t *testing.T) {
	raw, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPI
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	conn, _ := testdb.Open(t, "monitor_openapi")
	ctx := context.Background()
	end := time.Now().UTC().Truncate(time.Hour)
	start := end.Add(-time.Hour)
	ws, we, rs, re := sqlTime(start), sqlTime(end), sqlTime(start.Add(-24*time.Hour)), sqlTime(start)
	for _, q := range []string{
		`INSERT INTO drift_results (model_id, model_version, window_start, window_end, reference_start, reference_end, reference_kind, feature, kind, method, value, p_value, p_value_adjusted, threshold, drifted, sustained, status, note, samples) VALUES
			('m1', 'v1', ` + ws + `, ` + we + `, ` + rs + `, ` + re + `, 'pinned', 'f1', 'drift', 'ks', 0.4, 0.001, 0.002, 0.05, true, true, 'drifted', '', 500),
			('m1', 'v1', ` + ws + `, ` + we + `, ` + rs + `, ` + re + `, 'pinned', 'f1', 'drift', 'psi', 0.3, NULL, NULL, 0.2, true, true, 'drifted', '', 500),
			('m1', 'v1', ` + ws + `, ` + we + `, ` + rs + `, ` + re + `, 'pinned', 'city', 'drift', 'chi_square', nan, NULL, NULL, 0.05, false, false, 'skipped', 'high cardinality', 500),
			('m1', 'v1', ` + ws + `, ` + we + `, ` + rs + `, ` + re + `, 'pinned', '__all', 'data_quality', 'volume_ratio', 1.1, NULL, NULL, 2, false, false, 'ok', '', 500),
			('m1', 'v1', ` + ws + `, ` + we + `, ` + rs + `, ` + re + `, 'pinned', 'f1', 'data_quality', 'missing_share', 0.3, NULL, NULL, 0.05, true, false, 'drifted', '', 500),
			('m1', 'v1', ` + ws + `, ` + we + `, ` + rs + `, ` + re + `, 'pinned', '__all', 'data_quality', 'verdict', 1, NULL, NULL, 0, true, true, 'drifted', '', 500),
			('m1', 'v1', ` + ws + `, ` + we + `, ` + rs + `, ` + re + `, 'pinned', '__multivariate_reconstruction', 'drift', 'reconstruction_error', 1.78, NULL, NULL, 1.495, true, true, 'drifted', 'band [1.159, 1.495], 3 of 6 components', 3000),
			('m1', 'v1', ` + ws + `, ` + we + `, ` + rs + `, ` + re + `, 'pinned', '__multivariate_classifier', 'drift', 'domain_classifier', 0.89, NULL, NULL, 0.53, true, true, 'drifted', 'leaned on f1*f2 (6.13), f0*f2 (0.273), f2 (0.187)', 3000),
			('m1', 'v1', ` + ws + `, ` + we + `, ` + rs + `, ` + re + `, 'pinned', '__multivariate_classifier', 'drift', 'verdict', 1, NULL, NULL, 1, true, true, 'drifted', '', 3000)`,
		`INSERT INTO drift_results (model_id, model_version, window_start, window_end, reference_start, reference_end, reference_kind, feature, segment, kind, method, value, p_value, p_value_adjusted, threshold, drifted, sustained, status, note, samples) VALUES
			('m1', 'v1', ` + ws + `, ` + we + `, ` + rs + `, ` + re + `, 'pinned', 'f1', 'region=eu', 'drift', 'verdict', 1, NULL, NULL, 1, true, true, 'drifted', '', 200)`,
		`INSERT INTO retrain_triggers (trigger_id, dedup_key, model_id, model_version, reason, policy, window_start, window_end, reference_start, reference_end, evidence, created_at) VALUES
			('t1', 'm1/feature_drift/x', 'm1', 'v1', 'feature_drift', 'default', ` + ws + `, ` + we + `, ` + rs + `, ` + re + `, '[{"check":"drift","feature":"f1","method":"ks","value":0.4,"threshold":0.05,"p_value":0.001,"samples":500},{"check":"leaned_on","feature":"f1*f2","method":"domain_classifier","value":6.13,"threshold":0.53,"samples":3000}]', ` + we + `)`,
		`INSERT INTO root_causes (model_id, window_start, window_end, feature, segment_key, segment, rank, kind, mix, within, total, reference_share, current_share, population_psi, computed_at) VALUES
			('m1', ` + ws + `, ` + we + `, 'f1', 'region', 'region=eu', 1, 'within', 0.01, 0.2, 0.21, 0.33, 0.34, 0.3, ` + we + `)`,
		`INSERT INTO performance_results (model_id, model_version, window_start, window_end, metric, value, samples, label_coverage, computed_at) VALUES
			('m1', 'v1', ` + ws + `, ` + we + `, 'roc_auc', 0.81, 400, 0.8, ` + we + `)`,
		`INSERT INTO drift_distributions (model_id, window_start, window_end, reference_start, reference_end, reference_kind, feature, kind, reference_rows, current_rows, reference_missing, current_missing, bin_lower, bin_upper, reference_counts, current_counts, reference_min, reference_max, current_out_of_range, computed_at) VALUES
			('m1', ` + ws + `, ` + we + `, ` + rs + `, ` + re + `, 'pinned', 'f1', 'numeric', 500, 500, 0, 150, [-inf, 0], [0, inf], [250, 250], [100, 250], -3, 3, 4, ` + we + `)`,
		`INSERT INTO drift_distributions (model_id, window_start, window_end, reference_start, reference_end, reference_kind, feature, kind, reference_rows, current_rows, reference_missing, current_missing, categories, is_new, reference_counts, current_counts, reference_min, reference_max, distinct_values, folded, computed_at) VALUES
			('m1', ` + ws + `, ` + we + `, ` + rs + `, ` + re + `, 'pinned', 'city', 'categorical', 500, 500, 0, 0, ['paris', 'lyon'], [false, true], [500, 0], [300, 200], nan, nan, 2, false, ` + we + `)`,
		`INSERT INTO dead_letters (timestamp, received_at, model_id, kind, reason, error, kafka_topic, kafka_partition, kafka_offset) VALUES
			(` + ws + `, ` + ws + `, 'm1', 'inferences', 'missing_field', 'missing prediction', 't', 0, 1)`,
		`INSERT INTO training_runs (run_id, model_id, version, parent_version, status, decision, decision_reason, metrics, champion_metrics, diff_lo, diff_hi, started_at, finished_at, updated_at) VALUES
			('r1', 'm1', 'v2', 'v1', 'succeeded', 'promote', 'roc_auc +0.04', map('roc_auc', 0.84), map('roc_auc', 0.80), 0.01, 0.07, ` + ws + `, ` + we + `, ` + we + `)`,
		`INSERT INTO models (model_id, version, status, metrics, feature_importance, coefficient_importance, created_at, updated_at) VALUES
			('m1', 'v1', 'retired', map('roc_auc', 0.80), map(), map(), ` + rs + `, ` + we + `),
			('m1', 'v2', 'champion', map('roc_auc', 0.84), map('x', 0.5, 'f1', 0.4, 'city', 0.1), map('x', 0.8, 'city', 0.2), ` + we + `, ` + we + `)`,
		`INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, prediction_label, prediction_score, prediction_probabilities, segment, kafka_topic, kafka_partition, kafka_offset, ingested_at) VALUES
			('e1', 'm1', 'v1', 'p1', ` + sqlTime(start.Add(30*time.Minute)) + `, map('f1', 0.5), map('city', 'paris'), '1', 0.7, map(), map('region', 'eu'), 't', 0, 1, ` + we + `),
			('e2', 'm1', 'v1', 'p2', ` + sqlTime(start.Add(31*time.Minute)) + `, map('f1', 1.5), map('city', 'lyon'), 'b', NULL, map('a', 0.2, 'b', 0.5, 'c', 0.3), map('region', 'us'), 't', 0, 2, ` + we + `)`,
		`INSERT INTO business_correlations (model_id, model_metric, business_metric, lag, method, value, p_value, samples, bucket_seconds, window_start, window_end, computed_at) VALUES
			('m1', 'roc_auc', 'revenue', 2, 'pearson', 0.9, 0.001, 48, 3600, ` + rs + `, ` + we + `, ` + we + `)`,
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s := testSettings(48*time.Hour, DefaultSettings().Policy, nil)
	m := apiMonitor(t, conn, s)
	h := m.API()
	// What each path parameter is in the requests; a route with another
	// parameter fails until it is added here.
	params := map[string]string{"{model}": "m1", "{feature}": "f1"}
	bodies := map[string]string{"POST /api/v1/models/{model}/triggers": `{"note": "openapi test", "idempotency_key": "openapi-1"}`}
	// Lists that are empty by design for the seeded values: f1 is numeric,
	// so its distribution has bins and no categories (a categorical one
	// is checked after the loop).
	emptyOK := map[string][]string{"GET /api/v1/models/{model}/features/{feature}/distribution": {".categories"}}
	for _, r := range m.routes() {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			path := r.path
			for k, v := range params {
				path = strings.ReplaceAll(path, k, v)
			}
			if strings.Contains(path, "{") {
				t.Fatalf("no value for a parameter of %s: add it to params", r.path)
			}
			req := httptest.NewRequest(r.method, path, strings.NewReader(bodies[r.method+" "+r.path]))
			if r.method != http.MethodGet {
				req.Header.Set("Content-Type", "application/json")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 300 {
				t.Fatalf("%s %s: %d %s", r.method, path, rec.Code, rec.Body.String())
			}
			op, ok := doc.Paths[r.path][strings.ToLower(r.method)]
			if !ok {
				t.Fatalf("openapi.yaml does not document %s %s", r.method, r.path)
			}
			resp, ok := op.Responses[fmt.Sprint(rec.Code)]
			if !ok {
				t.Fatalf("openapi.yaml documents no %d answer of %s %s", rec.Code, r.method, r.path)
			}
			sch := resp.Content["application/json"].Schema
			if sch == nil {
				t.Fatalf("openapi.yaml gives no application/json schema for the %d answer of %s %s", rec.Code, r.method, r.path)
			}
			var body any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("answer is not JSON: %v: %s", err, rec.Body.String())
			}
			if errs := doc.validate(sch, body, "body"); len(errs) > 0 {
				t.Errorf("%s %s answers what openapi.yaml does not describe:\n  %s\nanswer: %s", r.method, path, strings.Join(errs, "\n  "), rec.Body.String())
			}
			if empty := emptyLists(body, ""); len(empty) > 0 && r.method == http.MethodGet &&
				!slices.Equal(empty, emptyOK[r.method+" "+r.path]) {
				t.Errorf("%s %s answers empty lists %v: the seeded data did not reach them, so their rows went unchecked: %s", r.method, path, empty, rec.Body.String())
			}
		})
	}
	t.Run("GET a categorical distribution", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/models/m1/features/city/distribution", nil))
		var body any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); rec.Code != 200 || err != nil {
			t.Fatalf("%d %v: %s", rec.Code, err, rec.Body.String())
		}
		sch := doc.Paths["/api/v1/models/{model}/features/{feature}/distribution"]["get"].Responses["200"].Content["application/json"].Schema
		if errs := doc.validate(sch, body, "body"); len(errs) > 0 {
			t.Errorf("answers what openapi.yaml does not describe:\n  %s", strings.Join(errs, "\n  "))
		}
		if empty := emptyLists(body, ""); !slices.Equal(empty, []string{".bins"}) {
			t.Errorf("empty lists %v, want only .bins: %s", empty, rec.Body.String())
		}
	})
}

// emptyLists returns the paths of the empty arrays in v (decoded JSON),
// sorted.
func emptyLists(v any, path string) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			return []string{path}
		}
		for i, e := range x {
			out = append(out, emptyLists(e, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case map[string]any:
		for k, e := range x {
			out = append(out, emptyLists(e, path+"."+k)...)
		}
	}
	slices.Sort(out)
	return out
}
