package retrain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/service"
	"github.com/driftwatch/driftwatch/internal/signing"
	"github.com/driftwatch/driftwatch/schemas"
)

// Reader is the part of a kafka-go consumer-group reader the trainer uses.
type Reader interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Writer is the part of a kafka-go writer the trainer uses.
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Options configure a Trainer.
type Options struct {
	Conn driver.Conn
	// Triggers is a consumer-group reader of retrain-triggers; nil for a
	// Trainer that only runs triggers handed to RunTrigger.
	Triggers Reader
	// Events receives model events; DeadLetters malformed triggers.
	Events      Writer
	DeadLetters Writer
	// TriggerKey, when set (trigger_signing_key_file), is the key every
	// consumed trigger must be signed with: one unsigned or with a
	// signature that does not match is dead-lettered (unsigned_trigger,
	// bad_signature) before it is decoded, and never trained.
	TriggerKey *signing.Key
	// Settings are the service's settings: DataDir (required) holds
	// artifacts/<model>/<version>/model.json and metadata.json and
	// work/<model>/<run>/, each run's datasets and external trainers'
	// output; a zero Workers, Lease, QueueSize or QueueBytes takes its
	// DefaultSettings value.
	Settings
	// MaxAttempts is how often a run interrupted by a crash or shutdown is
	// retried (3 when 0).
	MaxAttempts int
	// Secrets are replaced by [REDACTED] in an external trainer's log and
	// in the tail of it a failed run records; RunService passes every
	// secret of the service's configuration (config.SecretValues).
	Secrets    []string
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
}

// Trainer consumes retrain triggers and runs them.
type Trainer struct {
	opts Options
	self owner
	// artifactDir and workDir are DataDir's artifacts and work, 0700.
	artifactDir, workDir string
	activeMu             sync.Mutex
	active               map[string]bool // runs executing in this process
	q                    *queue
	offs                 *offsets
	m                    *metrics
	log                  *slog.Logger
	red                  *config.Redactor
	commits              sync.Mutex
}

// New validates opts and builds a Trainer.
func New(opts Options) (*Trainer, error) {
	var errs []error
	if opts.Conn == nil {
		errs = append(errs, errors.New("retrain: Conn is required"))
	}
	if opts.Events == nil {
		errs = append(errs, errors.New("retrain: Events is required"))
	}
	if opts.Triggers != nil && opts.DeadLetters == nil {
		errs = append(errs, errors.New("retrain: DeadLetters is required with Triggers"))
	}
	if opts.Lease < 0 || (opts.Lease > 0 && opts.Lease < 30*time.Millisecond) {
		errs = append(errs, fmt.Errorf("retrain: Lease %s is too short (heartbeats go every third of it)", opts.Lease))
	}
	if opts.DataDir == "" {
		errs = append(errs, errors.New("retrain: DataDir is required"))
	}
	if opts.QueueSize < 0 || opts.QueueBytes < 0 {
		errs = append(errs, fmt.Errorf("retrain: QueueSize %d and QueueBytes %d must not be negative", opts.QueueSize, opts.QueueBytes))
	}
	errs = append(errs, opts.Defaults.Validate("defaults"))
	for id, mc := range opts.Models {
		errs = append(errs, mc.Validate("models."+id))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	d := DefaultSettings()
	if opts.Workers <= 0 {
		opts.Workers = d.Workers
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 3
	}
	if opts.Lease <= 0 {
		opts.Lease = d.Lease
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = d.QueueSize
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = d.QueueBytes
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	artifacts, work, err := makeDataDir(opts.DataDir)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Trainer{opts: opts, self: selfOwner(), artifactDir: artifacts, workDir: work, active: map[string]bool{},
		q: newQueue(opts.QueueSize, opts.QueueBytes), offs: newOffsets(), m: m, log: opts.Logger,
		red: config.RedactorOf(opts.Secrets)}, nil
}

// ModelConfig returns the configuration a model is retrained with.
func (t *Trainer) ModelConfig(id string) ModelConfig {
	if mc, ok := t.opts.Models[id]; ok {
		return mc.withDefaults()
	}
	return t.opts.Defaults.withDefaults()
}

// Run recovers runs an earlier process left unfinished, then consumes
// triggers until ctx ends. A trigger's offset is committed once its run is
// recorded in training_runs (or it was skipped as a duplicate, or
// dead-lettered); a crash before that redelivers it, and the
// training_runs check makes the redelivery harmless.
func (t *Trainer) Run(ctx context.Context) error {
	if err := service.WaitFor(ctx, t.log, "recover unfinished training runs", t.Recover); err != nil {
		return err
	}
	if t.opts.Triggers == nil {
		<-ctx.Done()
		return nil
	}
	// The queue closes when ctx ends: consume may be waiting in push for
	// room, and the workers in pop.
	stop := context.AfterFunc(ctx, t.q.close)
	defer stop()
	var wg sync.WaitGroup
	for range t.opts.Workers {
		wg.Go(func() { t.work(ctx) })
	}
	err := t.consume(ctx)
	t.q.close()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (t *Trainer) consume(ctx context.Context) error {
	for {
		msg, err := t.opts.Triggers.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fetch retrain trigger: %w", err)
		}
		t.offs.add(msg)
		if err := t.opts.TriggerKey.Verify(msg); err != nil {
			if err := t.deadLetter(ctx, msg, string(signing.Reason(err)), err); err != nil {
				return err
			}
			t.finish(ctx, msg)
			continue
		}
		trig, err := schemas.DecodeRetrainTrigger(msg.Value)
		if err != nil {
			reason := "invalid"
			if r, ok := schemas.ReasonOf(err); ok {
				reason = string(r)
			}
			if err := t.deadLetter(ctx, msg, reason, err); err != nil {
				return err
			}
			t.finish(ctx, msg)
			continue
		}
		t.m.received.WithLabelValues(trig.ModelID).Inc()
		switch t.q.push(&item{trig: trig, msg: msg}) {
		case duplicate:
			t.m.skipped.WithLabelValues(trig.ModelID, "queued").Inc()
			t.log.Info("trigger already queued or running", "model", trig.ModelID, "trigger_id", trig.TriggerID)
			t.finish(ctx, msg)
			continue
		case closed:
			return nil // stopping: the trigger is redelivered
		}
		t.m.queued.Set(float64(t.q.len()))
	}
}

// Retry backoff of a trigger whose run met a transient error.
const (
	retryMin = time.Second
	retryMax = 30 * time.Second
)

func (t *Trainer) work(ctx context.Context) {
	for {
		it := t.q.pop()
		if it == nil {
			return
		}
		t.m.queued.Set(float64(t.q.len()))
		// A run takes as long as it takes (its trainer's timeout bounds
		// an external command), so no attempt is cut short.
		_, err := t.RunTrigger(ctx, it.trig)
		switch {
		case err == nil:
			t.q.done(it)
			t.finish(ctx, it.msg)
		case ctx.Err() != nil:
			// Stopping: not committed, so the trigger is redelivered.
			t.q.done(it)
		case poison(err):
			// The trigger itself is refused, and would be on every retry:
			// dead-letter it and go on with the next.
			reason := schemas.ReasonRejectedByStorage
			if r, ok := schemas.ReasonOf(err); ok {
				reason = r
			}
			t.log.Error("trigger refused for good; dead-lettered", "model", it.trig.ModelID, "trigger_id", it.trig.TriggerID, "reason", reason, "err", err)
			t.abandon(ctx, it.trig, err)
			if err := t.deadLetter(ctx, it.msg, string(reason), err); err != nil {
				t.q.done(it) // stopping: redelivered
				continue
			}
			t.q.done(it)
			t.finish(ctx, it.msg)
		default:
			// Infrastructure (ClickHouse or Kafka unreachable, a run held
			// by another trainer): back in the queue after a backoff, not
			// committed; the worker takes the next trigger meanwhile.
			it.attempts++
			delay := min(retryMin<<min(it.attempts-1, 10), retryMax)
			t.log.Warn("trigger will be retried", "model", it.trig.ModelID, "trigger_id", it.trig.TriggerID, "attempt", it.attempts, "retry_in", delay, "err", err)
			t.q.retry(it, time.Now().Add(delay))
		}
	}
}

// poison reports whether err means the trigger can never run: it breaks
// the trigger contract, or ClickHouse refused a request for what the
// trigger put in it (chclient.Permanent: a value it cannot store, a query
// too large).
func poison(err error) bool {
	if _, ok := schemas.ReasonOf(err); ok {
		return true
	}
	class, _ := chclient.Classify(err)
	return class == chclient.Permanent
}

// abandon records the run of a trigger refused for good as failed, if
// its running row was written, so that it does not wait for Recover; it
// logs what it cannot do (the same refusal, often).
func (t *Trainer) abandon(ctx context.Context, trig schemas.RetrainTrigger, cause error) {
	if trig.Validate() != nil {
		return
	}
	r, err := t.findRun(ctx, trig, RunID(trig.ModelID, trig.DedupKey))
	if err != nil || r == nil || r.Status != RunRunning || r.RunID != RunID(trig.ModelID, trig.DedupKey) || t.isActive(r.RunID) {
		return
	}
	end := t.opts.Now().UTC()
	r.Status, r.FinishedAt, r.DecisionReason = RunFailed, &end, "refused by ClickHouse: "+truncate(cause.Error(), 1024)
	if err := t.store().writeRun(ctx, r); err != nil {
		t.log.Warn("record a refused run as failed", "model", r.ModelID, "run_id", r.RunID, "err", err)
		return
	}
	t.m.runs.WithLabelValues(r.ModelID, RunFailed).Inc()
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func (t *Trainer) finish(ctx context.Context, msg kafka.Message) {
	t.commits.Lock()
	defer t.commits.Unlock()
	c, ok := t.offs.finish(msg)
	if !ok {
		return
	}
	if err := t.opts.Triggers.CommitMessages(context.WithoutCancel(ctx), c); err != nil {
		t.log.Warn("commit retrain trigger offset", "partition", c.Partition, "offset", c.Offset, "err", err)
	}
}

// deadLetterTruncateBytes is what a dead letter's value is cut to when
// the dead-letter writer or topic refuses it whole (ingest does the same);
// the headers keep where the original is.
const deadLetterTruncateBytes = 64 << 10

// deadLetter writes msg to the dead-letter topic with the reason headers
// of schemas/deadletter.go; the error header is cut to 1 KiB.
func (t *Trainer) deadLetter(ctx context.Context, msg kafka.Message, reason string, derr error) error {
	t.m.deadLettered.WithLabelValues(reason).Inc()
	t.log.Warn("retrain trigger sent to dead letters", "reason", reason, "partition", msg.Partition, "offset", msg.Offset)
	headers := append(append([]kafka.Header(nil), msg.Headers...),
		kafka.Header{Key: schemas.HeaderReason, Value: []byte(reason)},
		kafka.Header{Key: schemas.HeaderError, Value: []byte(truncate(derr.Error(), 1024))},
		kafka.Header{Key: schemas.HeaderSourceTopic, Value: []byte(msg.Topic)},
		kafka.Header{Key: schemas.HeaderSourcePartition, Value: []byte(strconv.Itoa(msg.Partition))},
		kafka.Header{Key: schemas.HeaderSourceOffset, Value: []byte(strconv.FormatInt(msg.Offset, 10))},
		kafka.Header{Key: schemas.HeaderDeadLetteredAt, Value: []byte(t.opts.Now().UTC().Format(time.RFC3339Nano))},
	)
	dl := kafka.Message{Key: msg.Key, Value: msg.Value, Headers: headers}
	return service.WaitFor(ctx, t.log, "write dead letter", func(ctx context.Context) error {
		err := t.opts.DeadLetters.WriteMessages(ctx, dl)
		if tooLarge(err) && len(dl.Value) > deadLetterTruncateBytes {
			n := len(dl.Value)
			dl.Value = dl.Value[:deadLetterTruncateBytes]
			dl.Headers = append(dl.Headers, kafka.Header{Key: schemas.HeaderValueTruncated, Value: []byte(strconv.Itoa(n))})
			err = t.opts.DeadLetters.WriteMessages(ctx, dl)
		}
		return err
	})
}

// tooLarge reports whether err says a message was too large for the
// writer or the broker.
func tooLarge(err error) bool {
	var mtl kafka.MessageTooLargeError
	if errors.As(err, &mtl) || errors.Is(err, kafka.MessageSizeTooLarge) {
		return true
	}
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil && tooLarge(e) {
				return true
			}
		}
	}
	return false
}

// makeDataDir creates dataDir (0700 when it is new) and its artifacts and
// work directories, 0700 whether new or not: artifacts and datasets hold
// the training data and models.
func makeDataDir(dataDir string) (artifacts, work string, err error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", "", fmt.Errorf("create data_dir: %w", err)
	}
	// Absolute, so that the artifact_uri the registry records (file://…)
	// names the artifact whatever a reader's working directory.
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	artifacts, work = filepath.Join(dataDir, "artifacts"), filepath.Join(dataDir, "work")
	for _, d := range []string{artifacts, work} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return "", "", fmt.Errorf("create %s: %w", d, err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return "", "", fmt.Errorf("restrict %s to its owner: %w", d, err)
		}
	}
	return artifacts, work, nil
}

// runDir is root/model/leaf, refusing a model or leaf that is not one
// plain name (schemas rejects such model ids; this keeps a RemoveAll
// inside root whatever reaches it).
func runDir(root, model, leaf string) (string, error) {
	for _, n := range []string{model, leaf} {
		if !filepath.IsLocal(n) || filepath.Base(n) != n || n == "." || n == ".." {
			return "", fmt.Errorf("BUG: %q is not a plain directory name", n)
		}
	}
	return filepath.Join(root, model, leaf), nil
}

func removeAll(dir string) { _ = os.RemoveAll(dir) }
