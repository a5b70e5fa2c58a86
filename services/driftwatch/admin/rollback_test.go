package admin

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/retrain"
	"github.com/driftwatch/driftwatch/retrain/model"
	"github.com/driftwatch/driftwatch/retrain/serve"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

// driftwatch rollback re-promotes the previous champion in the registry
// and publishes a promoted event that a running serve follows; driftwatch
// models export writes the artifact of the champion or of a version.
func TestRollbackAndExport(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	conn, db := testdb.Open(t, "rollback_cli")
	ctx := context.Background()
	kopts := kafkaio.Options{Brokers: brokers, TopicPrefix: "rollback-cli-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "."}
	var specs []kafkaio.TopicSpec
	for _, n := range []string{schemas.TopicInferences, schemas.TopicOutcomes, schemas.TopicModelEvents} {
		specs = append(specs, kafkaio.TopicSpec{Name: kopts.Topic(n), Partitions: 3})
	}
	if err := kafkaio.EnsureTopics(ctx, kafkaio.Options{Brokers: brokers}, specs); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	created := time.Now().UTC().Add(-time.Hour)
	for i, v := range []string{"v1", "v2"} {
		m := &model.Model{Format: model.FormatV1, Kind: model.KindRidge, Target: model.Target{Task: model.Regression}, Alpha: 1,
			Preprocessor: model.Preprocessor{Numeric: []model.NumericFeature{{Name: "x", Mean: 0, Std: 1}}, Categorical: []model.CategoricalFeature{}},
			Columns:      []string{"x"}, Coef: []float64{2}, Intercept: float64(i + 1)}
		var buf bytes.Buffer
		if err := m.Save(&buf); err != nil {
			t.Fatal(err)
		}
		m, err := model.Load(&buf)
		if err != nil {
			t.Fatal(err)
		}
		adir := filepath.Join(dir, v)
		if err := retrain.WriteArtifact(adir, m); err != nil {
			t.Fatal(err)
		}
		st, parent := retrain.StatusChampion, ""
		if v == "v1" {
			st = retrain.StatusRetired
		} else {
			parent = "v1"
		}
		if err := retrain.WriteVersion(ctx, conn, &retrain.Version{ModelID: "price", Version: v, Status: st, Trainer: retrain.TrainerBuiltin,
			ArtifactURI: "file://" + adir, ParentVersion: parent, CreatedAt: created.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}

	inf, _ := kafkaio.NewWriter(kopts, schemas.TopicInferences)
	out, _ := kafkaio.NewWriter(kopts, schemas.TopicOutcomes)
	rd, err := kafkaio.NewReader(kopts, schemas.TopicModelEvents, kopts.Prefix()+"serve-test")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { inf.Close(); out.Close(); rd.Close() }()
	s, err := serve.New(serve.Options{Settings: serve.DefaultSettings(), Conn: conn, Inferences: inf, Outcomes: out, Events: rd, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if got := s.Versions()["price"]; got != "v2" {
		t.Fatalf("serving %q, want v2", got)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- s.Run(runCtx) }()
	defer func() { stop(); <-done }()

	env := map[string]string{"DRIFTWATCH_CLICKHOUSE_URL": testdb.URL(t, db), "DRIFTWATCH_KAFKA_BROKERS": strings.Join(brokers, ","),
		"DRIFTWATCH_TOPIC_PREFIX": kopts.TopicPrefix}
	run := func(args ...string) (int, string, string) {
		var o, e bytes.Buffer
		code := command.Main(args, command.Env{Stdout: &o, Stderr: &e, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}, Commands())
		return code, o.String(), e.String()
	}
	if code, o, e := run("rollback", "-model", "price"); code != 0 || !strings.Contains(o, "v2 → v1") {
		t.Fatalf("rollback: %d %s %s", code, o, e)
	}
	deadline := time.Now().Add(60 * time.Second)
	for s.Versions()["price"] != "v1" {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not follow the rollback: serving %s", s.Versions()["price"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, o, e := run("rollback", "-model", "nope"); code != 1 || !strings.Contains(e, "no champion") {
		t.Errorf("rollback of an unknown model: %d %s %s", code, o, e)
	}

	for _, c := range []struct {
		args      []string
		intercept float64
	}{{nil, 1}, {[]string{"-version", "v2"}, 2}} {
		file := filepath.Join(t.TempDir(), "m.json")
		if code, o, e := run(append([]string{"models", "export", "-model", "price", "-o", file}, c.args...)...); code != 0 {
			t.Fatalf("export %v: %d %s %s", c.args, code, o, e)
		}
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.Load(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		// x = 3: intercept + 2·3.
		if got := m.PredictRow(map[string]float64{"x": 3}, nil); got != c.intercept+6 {
			t.Errorf("exported %v predicts %v, want %v", c.args, got, c.intercept+6)
		}
	}
}
