package retrain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/service"
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
	// Settings are the service's settings: ArtifactDir holds
	// <model>/<version>/model.json and metadata.json, WorkDir each run's
	// datasets and external trainers' output (both required); a zero
	// Workers or Lease takes its DefaultSettings value.
	Settings
	// MaxAttempts is how often a run interrupted by a crash or shutdown is
	// retried (3 when 0).
	MaxAttempts int
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
	Now         func() time.Time
}

// Trainer consumes retrain triggers and runs them.
type Trainer struct {
	opts     Options
	self     owner
	activeMu sync.Mutex
	active   map[string]bool // runs executing in this process
	q        *queue
	offs     *offsets
	m        *metrics
	log      *slog.Logger
	commits  sync.Mutex
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
	if opts.ArtifactDir == "" || opts.WorkDir == "" {
		errs = append(errs, errors.New("retrain: ArtifactDir and WorkDir are required"))
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
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Trainer{opts: opts, self: selfOwner(), active: map[string]bool{}, q: newQueue(), offs: newOffsets(), m: m, log: opts.Logger}, nil
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
		trig, err := schemas.DecodeRetrainTrigger(msg.Value)
		if err != nil {
			if err := t.deadLetter(ctx, msg, err); err != nil {
				return err
			}
			t.finish(ctx, msg)
			continue
		}
		t.m.received.WithLabelValues(trig.ModelID).Inc()
		if !t.q.push(&item{trig: trig, msg: msg}) {
			t.m.skipped.WithLabelValues(trig.ModelID, "queued").Inc()
			t.log.Info("trigger already queued or running", "model", trig.ModelID, "trigger_id", trig.TriggerID)
			t.finish(ctx, msg)
			continue
		}
		t.m.queued.Set(float64(t.q.len()))
	}
}

func (t *Trainer) work(ctx context.Context) {
	for {
		it := t.q.pop()
		if it == nil {
			return
		}
		t.m.queued.Set(float64(t.q.len()))
		// Infrastructure errors (ClickHouse or Kafka unreachable) are
		// retried: the offset is not committed until the run is recorded.
		// A run takes as long as it takes (its trainer's timeout bounds
		// an external command), so no attempt is cut short.
		err := service.Retry(ctx, t.log, "run trigger "+it.trig.TriggerID, func(ctx context.Context) error {
			_, err := t.RunTrigger(ctx, it.trig)
			return err
		})
		t.q.done(it)
		if err == nil {
			t.finish(ctx, it.msg)
		}
	}
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

func (t *Trainer) deadLetter(ctx context.Context, msg kafka.Message, derr error) error {
	reason := "invalid"
	var de *schemas.DecodeError
	if errors.As(derr, &de) {
		reason = string(de.Reason)
	}
	t.m.deadLettered.WithLabelValues(reason).Inc()
	t.log.Warn("malformed retrain trigger sent to dead letters", "reason", reason, "partition", msg.Partition, "offset", msg.Offset)
	headers := append(append([]kafka.Header(nil), msg.Headers...),
		kafka.Header{Key: schemas.HeaderReason, Value: []byte(reason)},
		kafka.Header{Key: schemas.HeaderError, Value: []byte(derr.Error())},
		kafka.Header{Key: schemas.HeaderSourceTopic, Value: []byte(msg.Topic)},
		kafka.Header{Key: schemas.HeaderSourcePartition, Value: []byte(strconv.Itoa(msg.Partition))},
		kafka.Header{Key: schemas.HeaderSourceOffset, Value: []byte(strconv.FormatInt(msg.Offset, 10))},
		kafka.Header{Key: schemas.HeaderDeadLetteredAt, Value: []byte(t.opts.Now().UTC().Format(time.RFC3339Nano))},
	)
	return service.WaitFor(ctx, t.log, "write dead letter", func(ctx context.Context) error {
		return t.opts.DeadLetters.WriteMessages(ctx, kafka.Message{Key: msg.Key, Value: msg.Value, Headers: headers})
	})
}

func removeAll(dir string) { _ = os.RemoveAll(dir) }
