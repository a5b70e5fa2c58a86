package gen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/loadgen"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

// genConfig is the configuration of `driftwatch gen`.
type genConfig struct {
	config.Kafka        `yaml:",inline"`
	config.Logging      `yaml:",inline"`
	ShutdownTimeout     time.Duration `yaml:"shutdown_timeout" env:"DRIFTWATCH_SHUTDOWN_TIMEOUT" flag:"shutdown-timeout" help:"how long sending what was generated may take after Ctrl-C"`
	Seed                int64         `yaml:"seed" flag:"seed" help:"random seed: the same seed and settings produce the same events, ids included"`
	Models              int           `yaml:"models" flag:"models" help:"number of models (model-0, model-1, …)"`
	NumericFeatures     int           `yaml:"numeric_features" flag:"numeric-features" help:"numeric features per model (f0, f1, …)"`
	CategoricalFeatures int           `yaml:"categorical_features" flag:"categorical-features" help:"categorical features per model (c0, c1, …)"`
	Task                string        `yaml:"task" flag:"task" help:"binary (label and score) or regression (value)"`
	Events              int64         `yaml:"events" flag:"events" help:"inferences to generate (valid, duplicate and malformed ones); 0 runs until interrupted"`
	Rate                float64       `yaml:"rate" flag:"rate" help:"inferences per second; 0 sends as fast as Kafka takes them"`
	DuplicateShare      float64       `yaml:"duplicate_share" flag:"duplicate-share" help:"share of inferences (and of outcomes) that re-send an earlier event byte for byte"`
	MalformedShare      float64       `yaml:"malformed_share" flag:"malformed-share" help:"share of inferences that are malformed, of every kind ingest must dead-letter"`
	MaxBytes            int           `yaml:"max_bytes" flag:"max-bytes" help:"ingest's event size limit, which oversized malformed events exceed"`
	MaxFeatures         int           `yaml:"max_features" flag:"max-features" help:"ingest's feature count limit, which too-many-features events exceed"`
	OutcomeShare        float64       `yaml:"outcome_share" flag:"outcome-share" help:"share of valid inferences that get an outcome (ground truth)"`
	LabelDelay          time.Duration `yaml:"label_delay" flag:"label-delay" help:"mean delay between an inference and its outcome, in event time"`
	LabelDelayDist      string        `yaml:"label_delay_dist" flag:"label-delay-dist" help:"label delay distribution: exponential or fixed"`
	Start               string        `yaml:"start" flag:"start" help:"event time of the first inference: an RFC 3339 time (reproducible), now, or auto (a finite run without -rate ends about now, others start now)"`
	Step                time.Duration `yaml:"step" flag:"step" help:"event time between two inferences; 0 means 1s/rate, or 10ms without a rate"`
	BusinessBucket      time.Duration `yaml:"business_bucket" flag:"business-bucket" help:"event time per business-metric (conversion_rate) observation and model; 0 disables them"`
	BusinessLag         int           `yaml:"business_lag" flag:"business-lag" help:"buckets the business metric trails model accuracy by"`
	Changes             []string      `yaml:"changes" flag:"change" help:"drift schedule, a comma list (see above); a repeated -change adds to the earlier ones"`
	Partitions          int           `yaml:"partitions" flag:"partitions" help:"partitions of topics gen creates (existing topics are left alone)"`
	Drain               bool          `yaml:"drain" flag:"drain" help:"at the end of a run also send the outcomes still waiting for their label time and the last business-metric bucket"`
	Manifest            string        `yaml:"manifest" flag:"manifest" help:"write a JSON summary (settings, counts) to this file at the end"`
	ManifestIDs         bool          `yaml:"manifest_ids" flag:"manifest-ids" help:"list the event id of every unique valid inference in the manifest"`
}

func defaultGenConfig() *genConfig {
	lc := loadgen.DefaultConfig()
	return &genConfig{
		Kafka:               config.DefaultKafka(),
		Logging:             config.DefaultLogging(),
		ShutdownTimeout:     30 * time.Second,
		Seed:                1,
		Models:              lc.Models,
		NumericFeatures:     lc.NumericFeatures,
		CategoricalFeatures: lc.CategoricalFeatures,
		Task:                string(lc.Task),
		Events:              100000,
		MaxBytes:            schemas.DefaultMaxBytes,
		MaxFeatures:         schemas.DefaultMaxFeatures,
		OutcomeShare:        lc.Outcomes.Share,
		LabelDelay:          lc.Outcomes.Delay,
		LabelDelayDist:      string(lc.Outcomes.Dist),
		Start:               "auto",
		BusinessBucket:      lc.BusinessMetrics.Bucket,
		BusinessLag:         lc.BusinessMetrics.Lag,
		Partitions:          schemas.TopicFor(schemas.TopicInferences).Partitions,
	}
}

// loadgenConfig turns the flags into the generator's Config; now resolves
// -start now. Every problem is reported, each naming its setting.
func (c *genConfig) loadgenConfig(now time.Time) (loadgen.Config, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	lc := loadgen.DefaultConfig()
	lc.Seed = uint64(c.Seed)
	lc.Models, lc.NumericFeatures, lc.CategoricalFeatures = c.Models, c.NumericFeatures, c.CategoricalFeatures
	lc.Task = loadgen.Task(c.Task)
	lc.DuplicateShare, lc.MalformedShare = c.DuplicateShare, c.MalformedShare
	lc.MaxBytes, lc.MaxFeatures = c.MaxBytes, c.MaxFeatures
	lc.Outcomes = loadgen.Outcomes{Share: c.OutcomeShare, Delay: c.LabelDelay, Dist: loadgen.DelayDist(c.LabelDelayDist)}
	lc.BusinessMetrics.Enabled = c.BusinessBucket > 0
	lc.BusinessMetrics.Bucket = c.BusinessBucket
	lc.BusinessMetrics.Lag = c.BusinessLag
	lc.RecordIDs = c.Manifest != "" && c.ManifestIDs

	switch {
	case c.Rate < 0:
		bad("rate: must not be negative, got %g", c.Rate)
	case c.Step < 0:
		bad("step: must not be negative, got %s", c.Step)
	case c.Step > 0:
		lc.Step = c.Step
	case c.Rate > 0:
		lc.Step = max(time.Duration(float64(time.Second)/c.Rate), time.Nanosecond)
	default:
		lc.Step = 10 * time.Millisecond
	}
	// Decoders reject timestamps more than an hour ahead of their clock, so
	// "auto" keeps an unpaced finite run from racing ahead of it.
	switch c.Start {
	case "now":
		lc.Start = now.UTC().Truncate(time.Millisecond)
	case "auto":
		lc.Start = now.UTC().Truncate(time.Millisecond)
		if c.Rate == 0 && c.Events > 0 && lc.Step > 0 {
			lc.Start = lc.Start.Add(-time.Duration(c.Events) * lc.Step)
		}
	default:
		t, err := time.Parse(time.RFC3339Nano, c.Start)
		if err != nil {
			bad("start: %q is neither an RFC 3339 time, now nor auto", c.Start)
		}
		lc.Start = t
	}
	if c.Events < 0 {
		bad("events: must not be negative, got %d", c.Events)
	}
	if c.Partitions < 1 {
		bad("partitions: must be at least 1, got %d", c.Partitions)
	}
	if c.ManifestIDs && c.Manifest == "" {
		bad("manifest_ids: needs -manifest")
	}
	if c.MaxBytes < 1 || c.MaxFeatures < 1 {
		bad("max_bytes, max_features: must be positive, got %d and %d", c.MaxBytes, c.MaxFeatures)
	}
	for _, s := range c.Changes {
		ch, err := loadgen.ParseChange(s, lc.Start)
		if err != nil {
			bad("changes: %v", err)
			continue
		}
		lc.Changes = append(lc.Changes, ch)
	}
	errs = append(errs, lc.Validate())
	return lc, errors.Join(errs...)
}

func (c *genConfig) Validate() error {
	_, err := c.loadgenConfig(time.Now())
	if c.ShutdownTimeout <= 0 {
		err = errors.Join(err, fmt.Errorf("shutdown_timeout: must be positive, got %s", c.ShutdownTimeout))
	}
	return errors.Join(c.Kafka.Validate(), c.Logging.Validate(), err)
}

func genCommand() command.Command {
	return command.Command{
		Name:    "gen",
		Summary: "produce a seeded, reproducible stream of inferences, outcomes and business metrics to Kafka",
		Usage: `driftwatch gen produces synthetic events to Kafka: inferences of -models models to
<prefix>inferences, their outcomes (after a label delay, in event time) to
<prefix>outcomes and a conversion_rate KPI per model and bucket to
<prefix>business-metrics, with producer duplicates, malformed events of every
kind ingest must dead-letter, and a schedule of drift changes. It creates the
topics (and <prefix>dead-letters) first. Events are stamped in event time from
-start, -step apart, so the same -seed, -start and settings give the same
events, ids included; -rate only paces the sending (and sets the default -step
to 1s/rate, so event time follows the wall clock). Ingest rejects timestamps
more than 1h ahead of its clock: an unpaced, endless run from now outruns it. Progress goes to stderr every second,
a summary to stdout at the end; Ctrl-C stops cleanly after sending what was
generated.

-change ` + loadgen.ChangeSyntax,
		Config: func() config.Validator { return defaultGenConfig() },
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			return runGen(ctx, c.(*genConfig), env)
		},
	}
}

// genManifest is what -manifest writes.
type genManifest struct {
	Seed         uint64            `json:"seed"`
	TopicPrefix  string            `json:"topic_prefix"`
	Topics       map[string]string `json:"topics"`
	Start        time.Time         `json:"start"`
	Step         string            `json:"step"`
	Changes      []string          `json:"changes,omitempty"`
	Interrupted  bool              `json:"interrupted"`
	Drained      bool              `json:"drained"`
	Sent         int64             `json:"sent"`
	Elapsed      float64           `json:"elapsed_seconds"`
	Stats        loadgen.Stats     `json:"stats"`
	UniqueValid  int64             `json:"unique_valid"`
	InferenceIDs []string          `json:"inference_ids,omitempty"`
}

// Topics are the short names of the topics gen writes to: the event
// topics. It also creates the dead-letter topic, which ingest writes.
func Topics() []string {
	return []string{schemas.TopicInferences, schemas.TopicOutcomes, schemas.TopicBusinessMetrics}
}

func runGen(ctx context.Context, cfg *genConfig, env command.Env) error {
	lc, err := cfg.loadgenConfig(time.Now())
	if err != nil {
		return err
	}
	g, err := loadgen.New(lc)
	if err != nil {
		return err
	}
	opts, err := kafkaio.FromConfig(cfg.Kafka, "driftwatch-gen", nil)
	if err != nil {
		return err
	}
	topics := schemas.EventTopics()
	for i := range topics {
		topics[i].Partitions = cfg.Partitions
	}
	specs := kafkaio.Specs(opts, append(topics, schemas.TopicFor(schemas.TopicDeadLetters))...)
	ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = kafkaio.EnsureTopics(ectx, opts, specs)
	cancel()
	if err != nil {
		return err
	}
	p, err := NewProducer(opts, Topics(), lc.MaxBytes)
	if err != nil {
		return err
	}

	began := time.Now()
	stopProgress := p.progress(env.Stderr, began)
	interrupted := false
	timer := time.NewTimer(0)
	<-timer.C
	lastFlush := began
	for cfg.Events == 0 || g.Ticks() < cfg.Events {
		if ctx.Err() != nil {
			interrupted = true
			break
		}
		if p.Failed() {
			break
		}
		p.Add(ctx, g.Next())
		if cfg.Rate > 0 {
			due := began.Add(time.Duration(float64(g.Ticks()) / cfg.Rate * float64(time.Second)))
			if d := time.Until(due); d > 2*time.Millisecond {
				// Send what is buffered before waiting, so a slow stream
				// reaches Kafka promptly.
				p.Flush(ctx)
				lastFlush = time.Now()
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					timer.Stop()
				}
			}
		} else if g.Ticks()%1024 == 0 && time.Since(lastFlush) > 100*time.Millisecond {
			p.Flush(ctx)
			lastFlush = time.Now()
		}
	}
	drained := false
	if cfg.Drain && !interrupted && !p.Failed() {
		for _, ev := range g.Drain() {
			p.Add(ctx, ev)
		}
		drained = true
	}
	// Send what was generated, under the shutdown timeout even after Ctrl-C.
	closeErr := p.Close(cfg.ShutdownTimeout)
	stopProgress()
	elapsed := time.Since(began)
	st := g.Stats()
	sent := p.sent.Load()
	fmt.Fprintf(env.Stdout, "driftwatch gen: sent %d messages in %s (%.0f/s): %s; %d inferences, %d unique valid events, %d duplicates, %d malformed%s\n",
		sent, elapsed.Round(time.Millisecond), float64(sent)/max(elapsed.Seconds(), 1e-9), p.perTopic(),
		st.Ticks, st.UniqueValid(), st.DuplicateCount(), st.MalformedCount(), reasonList(st.Malformed))
	if closeErr != nil {
		return closeErr
	}
	if cfg.Manifest == "" {
		return nil
	}
	m := genManifest{
		Seed: lc.Seed, TopicPrefix: opts.Prefix(), Topics: map[string]string{}, Start: lc.Start, Step: lc.Step.String(),
		Changes: cfg.Changes, Interrupted: interrupted, Drained: drained, Sent: sent, Elapsed: elapsed.Seconds(),
		Stats: st, UniqueValid: st.UniqueValid(), InferenceIDs: g.InferenceIDs(),
	}
	for _, t := range append(Topics(), schemas.TopicDeadLetters) {
		m.Topics[t] = opts.Topic(t)
	}
	return writeManifest(cfg.Manifest, m)
}

func reasonList(m map[schemas.Reason]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for r := range m {
		keys = append(keys, string(r))
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[schemas.Reason(k)])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func writeManifest(path string, m genManifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// genBatch is how many messages gen hands a writer at once; it matches
// kafkaio's writer batch size.
const genBatch = 1000

// topicSink feeds one topic's writer from one goroutine, so the messages of
// a topic keep their order.
type topicSink struct {
	name string
	w    *kafka.Writer
	ch   chan []kafka.Message
	buf  []kafka.Message
	sent atomic.Int64
}

// Producer sends loadgen events to their topics in batches; gen and
// bench ingest use it.
type Producer struct {
	sinks   map[string]*topicSink
	order   []*topicSink
	headers map[string][]kafka.Header
	sent    atomic.Int64
	wctx    context.Context // writes; cancelled only when shutdown times out
	wcancel context.CancelFunc
	wg      sync.WaitGroup
	errMu   sync.Mutex
	err     error
	bad     atomic.Bool
}

// NewProducer starts a writer for each of topics (short names under
// opts' prefix); maxBytes is the largest event it will be given.
func NewProducer(opts kafkaio.Options, topics []string, maxBytes int) (*Producer, error) {
	p := &Producer{sinks: map[string]*topicSink{}, headers: map[string][]kafka.Header{}}
	p.wctx, p.wcancel = context.WithCancel(context.Background())
	for _, t := range topics {
		w, err := kafkaio.NewWriter(opts, t)
		if err != nil {
			p.wcancel()
			for _, s := range p.order {
				s.w.Close()
			}
			return nil, err
		}
		// kafka-go refuses a message larger than BatchBytes before sending
		// it; oversized malformed events are just over -max-bytes (and
		// compress to a few KiB, under the broker's limit).
		if need := int64(maxBytes) + 64<<10; w.BatchBytes < need {
			w.BatchBytes = need
		}
		s := &topicSink{name: t, w: w, ch: make(chan []kafka.Message, 4)}
		p.sinks[t], p.order = s, append(p.order, s)
		p.wg.Add(1)
		go p.write(s)
	}
	return p, nil
}

func (p *Producer) write(s *topicSink) {
	defer p.wg.Done()
	for batch := range s.ch {
		if p.bad.Load() {
			continue // drain after a failure
		}
		if err := s.w.WriteMessages(p.wctx, batch...); err != nil {
			p.fail(fmt.Errorf("write %d messages to %s: %w", len(batch), s.w.Topic, err))
			continue
		}
		s.sent.Add(int64(len(batch)))
		p.sent.Add(int64(len(batch)))
	}
}

func (p *Producer) fail(err error) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.err == nil {
		p.err = err
	}
	p.bad.Store(true)
}

// Failed reports whether a write failed; Close returns the error.
func (p *Producer) Failed() bool { return p.bad.Load() }

// Sent returns how many events the brokers acknowledged so far.
func (p *Producer) Sent() int64 { return p.sent.Load() }

func (p *Producer) header(schema []byte) []kafka.Header {
	h, ok := p.headers[string(schema)]
	if !ok {
		h = []kafka.Header{{Key: schemas.SchemaHeader, Value: schema}}
		p.headers[string(schema)] = h
	}
	return h
}

// Add buffers ev and hands a full buffer to its writer. When ctx ends while
// the writer is busy, the buffer stays for close to send.
func (p *Producer) Add(ctx context.Context, ev loadgen.Event) {
	s := p.sinks[ev.Topic]
	if s == nil {
		panic("BUG: gen: event for unknown topic " + ev.Topic)
	}
	msg := kafka.Message{Key: ev.Key, Value: ev.Value}
	for _, h := range ev.Headers {
		if h.Key == schemas.SchemaHeader {
			msg.Headers = p.header(h.Value)
		}
	}
	s.buf = append(s.buf, msg)
	if len(s.buf) >= genBatch {
		p.send(ctx, s)
	}
}

func (p *Producer) send(ctx context.Context, s *topicSink) {
	if len(s.buf) == 0 {
		return
	}
	select {
	case s.ch <- s.buf:
		s.buf = make([]kafka.Message, 0, genBatch)
	case <-ctx.Done():
	}
}

// flush hands every partial buffer to its writer.
func (p *Producer) Flush(ctx context.Context) {
	for _, s := range p.order {
		p.send(ctx, s)
	}
}

// close sends what is buffered, waits for the writers and closes them, all
// within timeout.
func (p *Producer) Close(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, p.wcancel)
	defer stop()
	p.Flush(ctx)
	for _, s := range p.order {
		close(s.ch)
	}
	p.wg.Wait()
	var errs []error
	for _, s := range p.order {
		if len(s.buf) > 0 {
			errs = append(errs, fmt.Errorf("%d messages for %s not sent within the shutdown timeout %s", len(s.buf), s.w.Topic, timeout))
		}
		if err := s.w.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close writer of %s: %w", s.w.Topic, err))
		}
	}
	p.wcancel()
	p.errMu.Lock()
	errs = append([]error{p.err}, errs...)
	p.errMu.Unlock()
	return errors.Join(errs...)
}

func (p *Producer) perTopic() string {
	parts := make([]string, len(p.order))
	for i, s := range p.order {
		parts[i] = fmt.Sprintf("%s %d", s.name, s.sent.Load())
	}
	return strings.Join(parts, ", ")
}

// progress prints a line to w every second until the returned func is
// called.
func (p *Producer) progress(w io.Writer, began time.Time) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last, lastAt := int64(0), began
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				n := p.sent.Load()
				rate := float64(n-last) / now.Sub(lastAt).Seconds()
				fmt.Fprintf(w, "driftwatch gen: %s elapsed, %d sent (%s), %.0f/s\n",
					now.Sub(began).Round(time.Second), n, p.perTopic(), rate)
				last, lastAt = n, now
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// Commands returns the load generator's command, gen.
func Commands() []command.Command { return []command.Command{genCommand()} }
