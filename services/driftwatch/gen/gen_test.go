package gen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
	"github.com/driftwatch/driftwatch/services/driftwatch/command/commandtest"
)

func TestGenConfig(t *testing.T) {
	commandtest.RunCases(t, []string{"gen"}, Commands(), []commandtest.Case{
		{Name: "defaults are valid", Args: []string{"-check-config"}, WantOut: "start: auto"},
		{Name: "changes as a comma list", Args: []string{"-check-config", "-change", "mean_shift:f0:2.0@50000,concept_drift@+1m,model-0/missing:c1:0.2"},
			WantOut: "- concept_drift@+1m"},
		{Name: "regression with everything set", Args: []string{"-check-config", "-task", "regression", "-models", "4", "-rate", "500", "-duplicate-share", "0.1",
			"-malformed-share", "0.1", "-outcome-share", "0.5", "-label-delay", "1h", "-label-delay-dist", "fixed", "-start", "2024-05-01T00:00:00Z", "-business-bucket", "0"}},
		{Name: "segment changes", Args: []string{"-check-config", "-change", "segment_shift:region=eu:f3:1.5@+1m,segment_mix:region=eu:0.6@+2m"},
			WantOut: "- segment_mix:region=eu:0.6@+2m"},
		{Name: "segment change of an unknown slice", Args: []string{"-change", "segment_mix:country=fr:0.5"}, WantCode: 2, WantErr: []string{`segment "country=fr" is not one of region=us|eu|apac`}},
		{Name: "unknown change kind", Args: []string{"-change", "wobble:f0:1"}, WantCode: 2, WantErr: []string{`changes: change "wobble:f0:1": unknown kind`}},
		{Name: "change of a missing feature", Args: []string{"-change", "mean_shift:f20:1"}, WantCode: 2, WantErr: []string{`"f20" is not a numeric feature`}},
		{Name: "change of a missing model", Args: []string{"-models", "2", "-change", "model-2/concept_drift"}, WantCode: 2, WantErr: []string{`model "model-2"`}},
		{Name: "negative rate", Args: []string{"-rate", "-5"}, WantCode: 2, WantErr: []string{"rate: must not be negative"}},
		{Name: "shares over 1", Args: []string{"-malformed-share", "0.6", "-duplicate-share", "0.6"}, WantCode: 2, WantErr: []string{"duplicate_share, malformed_share"}},
		{Name: "bad start", Args: []string{"-start", "yesterday"}, WantCode: 2, WantErr: []string{`start: "yesterday" is neither`}},
		{Name: "bad task", Args: []string{"-task", "ranking"}, WantCode: 2, WantErr: []string{`task: "ranking"`}},
		{Name: "ids without manifest", Args: []string{"-manifest-ids"}, WantCode: 2, WantErr: []string{"manifest_ids: needs -manifest"}},
		{Name: "every problem at once", Args: []string{"-models", "0", "-partitions", "0", "-events", "-1", "-kafka-brokers", "nohost"}, WantCode: 2,
			WantErr: []string{"models:", "partitions:", "events:", "kafka_brokers:"}},
		{Name: "not a number", Args: []string{"-seed", "x"}, WantCode: 2, WantErr: []string{`"x" is not an integer`}},
	})
}

func TestGenStartAndStep(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		mod       func(*genConfig)
		wantStart time.Time
		wantStep  time.Duration
	}{
		{name: "auto, finite and unpaced: ends now", mod: func(c *genConfig) { c.Events = 1000 }, wantStart: now.Add(-10 * time.Second), wantStep: 10 * time.Millisecond},
		{name: "auto, paced: starts now, step from rate", mod: func(c *genConfig) { c.Rate = 200 }, wantStart: now, wantStep: 5 * time.Millisecond},
		{name: "auto, endless", mod: func(c *genConfig) { c.Events = 0 }, wantStart: now, wantStep: 10 * time.Millisecond},
		{name: "explicit", mod: func(c *genConfig) { c.Start = "2024-02-03T04:05:06Z"; c.Step = time.Second; c.Rate = 50 },
			wantStart: time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC), wantStep: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultGenConfig()
			tt.mod(c)
			lc, err := c.loadgenConfig(now)
			if err != nil {
				t.Fatal(err)
			}
			if !lc.Start.Equal(tt.wantStart) || lc.Step != tt.wantStep {
				t.Errorf("start %s step %s, want %s and %s", lc.Start, lc.Step, tt.wantStart, tt.wantStep)
			}
		})
	}
}

// readTopic reads want messages from topic with a fresh consumer group and
// then checks that no more arrive.
func readTopic(t *testing.T, opts kafkaio.Options, topic string, want int64) []kafka.Message {
	t.Helper()
	r, err := kafkaio.NewReader(opts, topic, fmt.Sprintf("gen-test-%d", time.Now().UnixNano()))
	if err != nil {
		t.Error(err)
		return nil
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var msgs []kafka.Message
	for int64(len(msgs)) < want {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Errorf("%s: read %d of %d messages: %v", topic, len(msgs), want, err)
			return msgs
		}
		msgs = append(msgs, m)
	}
	extra, cancel2 := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel2()
	if m, err := r.FetchMessage(extra); err == nil {
		t.Errorf("%s: more than the %d messages the manifest counts, for example %q", topic, want, m.Value)
	}
	return msgs
}

// deleteTopics removes the topics gen created under prefix.
func deleteTopics(t testing.TB, brokers []string, prefix string) {
	var names []string
	for _, n := range append(Topics(), schemas.TopicDeadLetters) {
		names = append(names, prefix+n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(brokers...)}
	res, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
	if err != nil {
		t.Logf("delete topics %v: %v", names, err)
		return
	}
	for name, err := range res.Errors {
		if err != nil {
			t.Logf("delete topic %s: %v", name, err)
		}
	}
}

func schemaOf(m kafka.Message) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == schemas.SchemaHeader {
			return string(h.Value), true
		}
	}
	return "", false
}

func TestGenAgainstKafka(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	prefix := fmt.Sprintf("gentest%d.", time.Now().UnixNano())
	t.Cleanup(func() { deleteTopics(t, brokers, prefix) })
	manifest := filepath.Join(t.TempDir(), "manifest.json")
	args := []string{"gen", "-kafka-brokers", strings.Join(brokers, ","), "-topic-prefix", prefix,
		"-events", "2000", "-seed", "9", "-models", "2", "-start", "2024-03-01T00:00:00Z", "-step", "10ms",
		"-malformed-share", "0.05", "-duplicate-share", "0.03", "-label-delay", "2s", "-business-bucket", "5s",
		"-drain", "-manifest", manifest, "-manifest-ids"}
	code, out, errs := run(args, nil)
	if code != 0 || !strings.Contains(out, "driftwatch gen: sent ") {
		t.Fatalf("gen: code %d, stdout %q, stderr %q", code, out, errs)
	}
	t.Log(strings.TrimSpace(out))
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	var m genManifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	st := m.Stats
	if st.Ticks != 2000 || m.Sent != st.Messages || !m.Drained || m.Interrupted || int64(len(m.InferenceIDs)) != st.Inferences {
		t.Fatalf("manifest: %s", data[:min(len(data), 2000)])
	}

	opts := kafkaio.Options{Brokers: brokers, TopicPrefix: prefix}
	got := map[string][]kafka.Message{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, topic := range []string{"inferences", "outcomes", "business-metrics"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs := readTopic(t, opts, topic, st.Topics[topic])
			mu.Lock()
			got[topic] = msgs
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, topic := range []string{"outcomes", "business-metrics"} {
		for _, msg := range got[topic] {
			if h, _ := schemaOf(msg); h != "driftwatch."+strings.TrimSuffix(topic, "s")+".v1" {
				t.Fatalf("%s: schema header %q", topic, h)
			}
		}
	}

	// Every valid inference decodes, and the set of their ids is the
	// manifest's; malformed ones fail with some reason.
	dec, err := schemas.NewDecoder(schemas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var inf schemas.Inference
	ids := map[string]bool{}
	var v1, rejected int64
	for _, msg := range got["inferences"] {
		h, ok := schemaOf(msg)
		if !ok {
			t.Fatalf("inference without a schema header: %q", msg.Value)
		}
		if _, err := schemas.KindForMessage(h, msg.Topic, prefix); err != nil {
			rejected++
			continue
		}
		v1++
		if _, err := dec.DecodeInference(msg.Value, &inf); err != nil {
			rejected++
			continue
		}
		if inf.ModelID != string(msg.Key) {
			t.Errorf("key %q, model_id %q", msg.Key, inf.ModelID)
		}
		ids[inf.EventID] = true
	}
	if rejected != st.MalformedCount() {
		t.Errorf("%d inferences rejected, the manifest counts %d malformed", rejected, st.MalformedCount())
	}
	if want := st.Topics["inferences"] - st.Malformed[schemas.ReasonUnsupportedSchema]; v1 != want {
		t.Errorf("%d inferences with header driftwatch.inference.v1, want %d", v1, want)
	}
	if len(ids) != len(m.InferenceIDs) {
		t.Errorf("%d distinct valid inference ids in Kafka, %d in the manifest", len(ids), len(m.InferenceIDs))
	}
	for _, id := range m.InferenceIDs {
		if !ids[id] {
			t.Fatalf("manifest id %s not in Kafka", id)
		}
	}

	t.Run("interrupt stops cleanly", func(t *testing.T) {
		cfg := defaultGenConfig()
		cfg.KafkaBrokers, cfg.TopicPrefix = brokers, prefix
		cfg.Events, cfg.Rate, cfg.Seed = 0, 2000, 10
		cfg.Manifest = filepath.Join(t.TempDir(), "m.json")
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		// The interrupt comes half a second after the first progress line,
		// so topic setup on a slow machine does not eat the generation time.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var stdout bytes.Buffer
		stderr := &interruptingWriter{onLine: "elapsed", after: 500 * time.Millisecond, cancel: cancel}
		if err := runGen(ctx, cfg, command.Env{Stdout: &stdout, Stderr: stderr}); err != nil {
			t.Fatalf("gen after interrupt: %v", err)
		}
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("gen was not interrupted by the test (context: %v); stderr: %q", ctx.Err(), stderr.String())
		}
		data, err := os.ReadFile(cfg.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		var m genManifest
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		// Order and outcome, not speed (BenchmarkGenPaced measures the
		// pace): the endless run was generating when the interrupt came,
		// after a progress line, and every generated message was sent.
		if !m.Interrupted || m.Sent != m.Stats.Messages || m.Stats.Ticks == 0 {
			t.Errorf("manifest after interrupt: interrupted %v, sent %d of %d, %d inferences", m.Interrupted, m.Sent, m.Stats.Messages, m.Stats.Ticks)
		}
		if !progressLine.MatchString(stderr.String()) {
			t.Errorf("no progress line on stderr: %q", stderr.String())
		}
	})
}

// progressLine is the form of gen's progress lines on stderr.
var progressLine = regexp.MustCompile(`(?m)^driftwatch gen: \d+s elapsed, \d+ sent \(.*\), \d+/s$`)

// BenchmarkGenPaced runs gen with -rate 2000 for 4000 inferences against
// the Kafka broker of the environment and reports the pace it kept, as
// inferences a second and as a share of the rate asked for.
func BenchmarkGenPaced(b *testing.B) {
	brokers := testenv.KafkaBrokers(b)
	prefix := fmt.Sprintf("genbench%d.", time.Now().UnixNano())
	b.Cleanup(func() { deleteTopics(b, brokers, prefix) })
	const rate, events = 2000, 4000
	var secs float64
	for b.Loop() {
		cfg := defaultGenConfig()
		cfg.KafkaBrokers, cfg.TopicPrefix = brokers, prefix
		cfg.Events, cfg.Rate, cfg.Seed = events, rate, 10
		cfg.Manifest = filepath.Join(b.TempDir(), "m.json")
		if err := cfg.Validate(); err != nil {
			b.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if err := runGen(context.Background(), cfg, command.Env{Stdout: &stdout, Stderr: &stderr}); err != nil {
			b.Fatalf("gen: %v\n%s", err, stderr.String())
		}
		data, err := os.ReadFile(cfg.Manifest)
		if err != nil {
			b.Fatal(err)
		}
		var m genManifest
		if err := json.Unmarshal(data, &m); err != nil {
			b.Fatal(err)
		}
		secs += m.Elapsed
	}
	perSec := float64(b.N*events) / secs
	b.ReportMetric(perSec, "inferences/s")
	b.ReportMetric(perSec/rate, "of-rate")
}

// interruptingWriter collects a command's stderr and calls cancel a little
// after the first write containing onLine.
type interruptingWriter struct {
	onLine string
	after  time.Duration
	cancel context.CancelFunc
	mu     sync.Mutex
	buf    bytes.Buffer
	armed  bool
}

func (w *interruptingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed && bytes.Contains(p, []byte(w.onLine)) {
		w.armed = true
		time.AfterFunc(w.after, w.cancel)
	}
	return w.buf.Write(p)
}

func (w *interruptingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
