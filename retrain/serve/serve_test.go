package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/retrain"
	"github.com/driftwatch/driftwatch/retrain/model"
	"github.com/driftwatch/driftwatch/schemas"
)

// testModel is a logistic regression written down by hand: features a
// (mean 0, std 1, never missing), b (mean 1, std 2, missing in 10 % of the
// training rows) and c (categories x, y, then other); the intercept
// differs per version so that a score tells which version computed it.
func testModel(t *testing.T, intercept float64) *model.Model {
	t.Helper()
	m := &model.Model{Format: model.FormatV1, Kind: model.KindLogistic, Target: model.Target{Task: model.Classification, PositiveClass: "1"}, C: 1,
		Preprocessor: model.Preprocessor{
			Numeric:     []model.NumericFeature{{Name: "a", Mean: 0, Std: 1}, {Name: "b", Mean: 1, Std: 2, Missing: 0.1}},
			Categorical: []model.CategoricalFeature{{Name: "c", Categories: []string{"x", "y"}}},
		},
		Columns: []string{"a", "b", "c=x", "c=y", "c:other"}, Coef: []float64{0.5, -0.25, 1, 2, -1}, Intercept: intercept}
	var buf bytes.Buffer
	if err := m.Save(&buf); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// handScore is testModel's score computed by hand: z = intercept + 0.5·a
// − 0.25·(b − 1)/2 + the category's coefficient; a missing b is its mean
// (contributes 0).
func handScore(intercept, a float64, b *float64, c string) float64 {
	z := intercept + 0.5*a
	if b != nil {
		z += -0.25 * (*b - 1) / 2
	}
	switch c {
	case "x":
		z += 1
	case "y":
		z += 2
	default:
		z += -1
	}
	return 1 / (1 + math.Exp(-z))
}

type world struct {
	conn    driver.Conn
	kopts   kafkaio.Options
	dir     string
	events  *kafka.Writer
	brokers []string
}

func openWorld(t *testing.T) *world {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	conn, _ := testdb.Open(t, "serve_test")
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	w := &world{conn: conn, brokers: brokers, kopts: kafkaio.Options{Brokers: brokers, TopicPrefix: "serve-test-" + id + "."}, dir: t.TempDir()}
	var specs []kafkaio.TopicSpec
	for _, n := range []string{schemas.TopicInferences, schemas.TopicOutcomes, schemas.TopicModelEvents} {
		specs = append(specs, kafkaio.TopicSpec{Name: w.kopts.Topic(n), Partitions: 3})
	}
	if err := kafkaio.EnsureTopics(context.Background(), kafkaio.Options{Brokers: brokers}, specs); err != nil {
		t.Fatal(err)
	}
	ev, err := kafkaio.NewWriter(w.kopts, schemas.TopicModelEvents)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ev.Close() })
	w.events = ev
	return w
}

// register writes version's artifact and registers it as champion
// (retiring parent) through the registry code; promote publishes the event.
func (w *world) register(t *testing.T, modelID, version, parent string, intercept float64, promote bool) {
	t.Helper()
	dir := filepath.Join(w.dir, modelID, version)
	if err := retrain.WriteArtifact(dir, testModel(t, intercept)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UTC()
	v := &retrain.Version{ModelID: modelID, Version: version, Status: retrain.StatusChampion, Trainer: retrain.TrainerBuiltin, ArtifactURI: "file://" + dir,
		ParentVersion: parent, CreatedAt: now}
	if err := retrain.WriteVersion(ctx, w.conn, v); err != nil {
		t.Fatal(err)
	}
	if parent != "" {
		vs, err := retrain.ListVersions(ctx, w.conn, modelID)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range vs {
			if p.Version == parent {
				p.Status, p.Reason = retrain.StatusRetired, "superseded by "+version
				if err := retrain.WriteVersion(ctx, w.conn, p); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if promote {
		if err := retrain.PublishPromoted(ctx, w.events, v, now); err != nil {
			t.Fatal(err)
		}
	}
}

type running struct {
	s      *Server
	http   *httptest.Server
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
}

func (w *world) start(t *testing.T, set Settings) *running {
	t.Helper()
	return w.startWith(t, set, nil)
}

// startWith is start with edit applied to the Server before it runs.
func (w *world) startWith(t *testing.T, set Settings, edit func(*Server)) *running {
	t.Helper()
	inf, err := kafkaio.NewWriter(w.kopts, schemas.TopicInferences)
	if err != nil {
		t.Fatal(err)
	}
	out, err := kafkaio.NewWriter(w.kopts, schemas.TopicOutcomes)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := kafkaio.NewReader(w.kopts, schemas.TopicModelEvents, w.kopts.Prefix()+"serve-"+instance())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := New(Options{Settings: set, Conn: w.conn, Inferences: inf, Outcomes: out, Events: rd, InferencesTopic: inf.Topic, OutcomesTopic: out.Topic,
		Registerer: reg, ShutdownTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(s)
	}
	if err := s.Load(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{s: s, http: httptest.NewServer(s.Handler()), cancel: cancel, done: make(chan error, 1), reg: reg}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		r.stop(t)
		r.http.Close()
		rd.Close()
		inf.Close()
		out.Close()
	})
	return r
}

func (r *running) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// readTopic reads n messages of topic (all partitions) or fails.
func (w *world) readTopic(t *testing.T, name string, n int) []kafka.Message {
	t.Helper()
	rd, err := kafkaio.NewReader(w.kopts, name, w.kopts.Prefix()+"check-"+name+"-"+uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out []kafka.Message
	for len(out) < n {
		m, err := rd.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("read %s: %d of %d messages: %v", name, len(out), n, err)
		}
		out = append(out, m)
	}
	// Nothing more than n: a short read of what else arrives.
	short, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if m, err := rd.FetchMessage(short); err == nil {
		t.Errorf("%s has more than %d messages: also %s", name, n, m.Value)
	}
	return out
}

func ptr(v float64) *float64 { return &v }

// TestPredictLogsAndValidates: predictions match the hand computation
// (missing b imputed, unseen category other), every row is logged in the
// wire format (decoded by the schemas decoder ingest uses), outcomes are
// forwarded, and bad input gets a 4xx naming the field.
func TestPredictLogsAndValidates(t *testing.T) {
	w := openWorld(t)
	w.register(t, "churn", "v1", "", 0.1, false)
	r := w.start(t, DefaultSettings())
	url := r.http.URL + "/v1/models/churn/"

	code, raw := post(t, url+"predict", `{"features": {"a": 1, "b": 3, "c": "y", "extra": "kept"}, "segment": {"country": "de"}}`)
	if code != 200 {
		t.Fatalf("predict: %d %s", code, raw)
	}
	var one PredictResponse
	if err := json.Unmarshal(raw, &one); err != nil {
		t.Fatal(err)
	}
	// z = 0.1 + 0.5 − 0.25·(3−1)/2 + 2 = 2.35
	want := 1 / (1 + math.Exp(-2.35))
	p := one.Predictions[0]
	if len(one.Predictions) != 1 || p.ModelVersion != "v1" || p.Label != "1" || p.Score == nil || !(math.Abs(*p.Score-want) <= 1e-12) {
		t.Fatalf("predict = %s, want score %v label 1 version v1", raw, want)
	}
	if _, err := uuid.Parse(p.PredictionID); err != nil {
		t.Errorf("prediction_id %q: %v", p.PredictionID, err)
	}

	code, raw = post(t, url+"predict", `{"rows": [{"features": {"a": -2, "b": null, "c": "unseen"}}, {"features": {"a": 0, "c": null}}, {"features": {"a": true, "b": 1, "c": "x"}}]}`)
	if code != 200 {
		t.Fatalf("batch predict: %d %s", code, raw)
	}
	var batch PredictResponse
	if err := json.Unmarshal(raw, &batch); err != nil {
		t.Fatal(err)
	}
	wantBatch := []struct {
		score float64
		label string
	}{
		{handScore(0.1, -2, nil, "other"), "0"},
		// c null sets no category column: z = 0.1.
		{1 / (1 + math.Exp(-0.1)), "1"},
		{handScore(0.1, 1, ptr(1), "x"), "1"},
	}
	for i, wb := range wantBatch {
		got := batch.Predictions[i]
		if got.Score == nil || !(math.Abs(*got.Score-wb.score) <= 1e-12) || got.Label != wb.label {
			t.Errorf("row %d: %+v (score %v), want score %v label %s", i, got, deref(got.Score), wb.score, wb.label)
		}
	}

	for _, c := range []struct {
		name, path, body string
		code             int
		field            string
	}{
		{"unknown model", "/v1/models/nope/predict", `{"features": {"a": 1}}`, 404, "model"},
		{"string for a number", "/v1/models/churn/predict", `{"features": {"a": "1", "b": 1, "c": "x"}}`, 400, "features.a"},
		{"number for a category", "/v1/models/churn/predict", `{"features": {"a": 1, "c": 3}}`, 400, "features.c"},
		{"missing feature", "/v1/models/churn/predict", `{"features": {"b": 1, "c": "x"}}`, 400, "features.a"},
		{"missing category", "/v1/models/churn/predict", `{"features": {"a": 1}}`, 400, "features.c"},
		{"nested", "/v1/models/churn/predict", `{"features": {"a": 1, "c": "x", "d": {"e": 1}}}`, 400, "features.d"},
		{"batch row", "/v1/models/churn/predict", `{"rows": [{"features": {"a": 1, "c": "x"}}, {"features": {"a": 1, "c": []}}]}`, 400, "rows[1].features.c"},
		{"segment", "/v1/models/churn/predict", `{"features": {"a": 1, "c": "x"}, "segment": {"country": 1}}`, 400, "segment.country"},
		{"no features", "/v1/models/churn/predict", `{}`, 400, "features"},
		{"outcome without id", "/v1/models/churn/outcomes", `{"label": "1"}`, 400, "prediction_id"},
		{"outcome label type", "/v1/models/churn/outcomes", `{"prediction_id": "p", "label": 1}`, 400, "label"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, raw := post(t, r.http.URL+c.path, c.body)
			var e apiError
			_ = json.Unmarshal(raw, &e)
			if code != c.code || e.Field != c.field || !strings.HasPrefix(e.Error, c.field+": ") {
				t.Errorf("%d %s, want %d naming %s", code, raw, c.code, c.field)
			}
		})
	}
	code, raw = post(t, url+"predict", `{"features": {"a": 1, "c": "x"}, "typo": 1}`)
	if code != 400 || !strings.Contains(string(raw), "typo") {
		t.Errorf("unknown field: %d %s", code, raw)
	}

	code, raw = post(t, url+"outcomes", fmt.Sprintf(`{"prediction_id": %q, "label": "0"}`, p.PredictionID))
	if code != 202 {
		t.Fatalf("outcome: %d %s", code, raw)
	}

	r.stop(t) // flushes
	dec, err := schemas.NewDecoder(schemas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	msgs := w.readTopic(t, schemas.TopicInferences, 4)
	byID := map[string]schemas.Inference{}
	for _, m := range msgs {
		if h := header(m, schemas.SchemaHeader); h != "driftwatch.inference.v1" || string(m.Key) != "churn" {
			t.Errorf("message key %q schema header %q", m.Key, h)
		}
		var ev schemas.Inference
		if _, err := dec.DecodeInference(m.Value, &ev); err != nil {
			t.Fatalf("decode %s: %v", m.Value, err)
		}
		byID[ev.PredictionID] = ev
	}
	ev, ok := byID[p.PredictionID]
	if !ok {
		t.Fatalf("no inference event for %s", p.PredictionID)
	}
	if ev.ModelVersion != "v1" || ev.Numeric["a"] != 1 || ev.Numeric["b"] != 3 || ev.Categorical["c"] != "y" || ev.Categorical["extra"] != "kept" ||
		ev.Segment["country"] != "de" || !ev.Prediction.HasScore || ev.Prediction.Score != *p.Score || ev.Prediction.Label != "1" {
		t.Errorf("inference event %+v", ev)
	}
	if ev0 := byID[batch.Predictions[0].PredictionID]; len(ev0.MissingFeatures) != 1 || ev0.MissingFeatures[0] != "b" {
		t.Errorf("row with b null: missing %v", ev0.MissingFeatures)
	}
	outs := w.readTopic(t, schemas.TopicOutcomes, 1)
	var o schemas.Outcome
	if _, err := dec.DecodeOutcome(outs[0].Value, &o); err != nil {
		t.Fatalf("decode outcome %s: %v", outs[0].Value, err)
	}
	if o.PredictionID != p.PredictionID || o.ModelID != "churn" || o.Actual.Label != "0" {
		t.Errorf("outcome %+v", o)
	}
	if got := testutil.ToFloat64(r.s.events.events.WithLabelValues(r.s.opts.InferencesTopic, "written")); got != 4 {
		t.Errorf("inferences written = %v, want 4", got)
	}
}

func deref(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestReloadOnPromotionUnderLoad: traffic goes on while v2 is promoted
// (registry, then model event) and then rolled back with retrain.Rollback:
// no request fails, each answer's score is the one its model_version
// computes (no mixed version), and once the server reports a version,
// every request sent after that gets it. Every answered row is logged.
func TestReloadOnPromotionUnderLoad(t *testing.T) {
	w := openWorld(t)
	w.register(t, "churn", "v1", "", 0.1, false)
	r := w.start(t, DefaultSettings())
	intercepts := map[string]float64{"v1": 0.1, "v2": -0.7}
	url := r.http.URL + "/v1/models/churn/predict"
	body := `{"features": {"a": 0.5, "b": 2, "c": "x"}}`

	var (
		current  atomic.Value // the version the server reports, set by the watcher below
		answered atomic.Int64
		mu       sync.Mutex
		problems []string
	)
	current.Store("v1")
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 10 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{}
			for ctx.Err() == nil {
				resp, err := client.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					report("post: %v", err)
					return
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					report("status %d: %s", resp.StatusCode, raw)
					continue
				}
				var pr PredictResponse
				if err := json.Unmarshal(raw, &pr); err != nil {
					report("decode %s: %v", raw, err)
					continue
				}
				answered.Add(1)
				got := pr.Predictions[0]
				ic, ok := intercepts[got.ModelVersion]
				if !ok {
					report("model_version %q", got.ModelVersion)
					continue
				}
				if want := handScore(ic, 0.5, ptr(2), "x"); got.Score == nil || !(math.Abs(*got.Score-want) <= 1e-12) {
					report("version %s answered score %v, its model computes %v (mixed versions)", got.ModelVersion, deref(got.Score), want)
				}
				if got.Unlogged {
					report("a row was not logged")
				}
			}
		}()
	}
	waitVersion := func(want string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for r.s.Versions()["churn"] != want {
			if time.Now().After(deadline) {
				t.Fatalf("serve still at %q, want %q", r.s.Versions()["churn"], want)
			}
			time.Sleep(20 * time.Millisecond)
		}
		current.Store(want)
	}
	// Requests sent after the swap get the new version: checked by a
	// request of this goroutine, after the watcher saw the swap.
	checkAfter := func(want string) {
		t.Helper()
		for range 20 {
			code, raw := post(t, url, body)
			var pr PredictResponse
			if code != 200 || json.Unmarshal(raw, &pr) != nil || pr.Predictions[0].ModelVersion != want {
				t.Errorf("after the swap to %s: %d %s", want, code, raw)
			}
		}
	}
	for answered.Load() < 200 {
		time.Sleep(10 * time.Millisecond)
	}
	w.register(t, "churn", "v2", "v1", -0.7, true)
	waitVersion("v2")
	checkAfter("v2")
	n := answered.Load()
	for answered.Load() < n+200 {
		time.Sleep(10 * time.Millisecond)
	}
	from, to, err := retrain.Rollback(context.Background(), w.conn, w.events, "churn", time.Now())
	if err != nil || from != "v2" || to != "v1" {
		t.Fatalf("Rollback = %s → %s, %v; want v2 → v1", from, to, err)
	}
	waitVersion("v1")
	checkAfter("v1")
	n = answered.Load()
	for answered.Load() < n+200 {
		time.Sleep(10 * time.Millisecond)
	}
	stopLoad()
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}
	vs, err := retrain.ListVersions(context.Background(), w.conn, "churn")
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, v := range vs {
		status[v.Version] = v.Status
	}
	if status["v1"] != retrain.StatusChampion || status["v2"] != retrain.StatusRetired {
		t.Errorf("registry after rollback: %v", status)
	}
	r.stop(t)
	total := int(answered.Load()) + 40
	written := testutil.ToFloat64(r.s.events.events.WithLabelValues(r.s.opts.InferencesTopic, "written"))
	if int(written) != total {
		t.Errorf("written %v inference events, answered %d rows", written, total)
	}
	t.Logf("%d predictions through a promotion and a rollback", total)
	w.readTopic(t, schemas.TopicInferences, total)
}

// A corrupted artifact (checksum mismatch) is not served: the model keeps
// its version and the reload is counted as rejected.
func TestCorruptArtifactRejected(t *testing.T) {
	w := openWorld(t)
	w.register(t, "churn", "v1", "", 0.1, false)
	r := w.start(t, DefaultSettings())
	dir := filepath.Join(w.dir, "churn", "v2")
	if err := retrain.WriteArtifact(dir, testModel(t, -0.7)); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, retrain.ArtifactFile), func(b []byte) []byte { return bytes.Replace(b, []byte("-0.7"), []byte("-0.8"), 1) }); err != nil {
		t.Fatal(err)
	}
	v := &retrain.Version{ModelID: "churn", Version: "v2", Status: retrain.StatusChampion, Trainer: retrain.TrainerBuiltin, ArtifactURI: "file://" + dir, CreatedAt: time.Now().UTC()}
	if err := retrain.WriteVersion(context.Background(), w.conn, v); err != nil {
		t.Fatal(err)
	}
	if err := r.s.Load(context.Background(), "churn"); err != nil {
		t.Fatal(err)
	}
	if got := r.s.Versions()["churn"]; got != "v1" {
		t.Errorf("served %s after a corrupt v2, want v1", got)
	}
	if got := testutil.ToFloat64(r.s.m.reloads.WithLabelValues("churn", "rejected")); got != 1 {
		t.Errorf("rejected reloads = %v, want 1", got)
	}
	if _, _, err := retrain.ReadArtifact("file://" + dir); !errors.Is(err, retrain.ErrArtifact) || !errors.Is(err, retrain.ErrChecksum) {
		t.Errorf("ReadArtifact = %v", err)
	}
}

func writeFile(path string, edit func([]byte) []byte) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, edit(b), 0o600)
}
