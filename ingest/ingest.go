// Package ingest moves events from Kafka into ClickHouse, exactly once as
// far as an analyst can tell: every valid event ends up in its table once
// (under FINAL), every invalid one in the dead-letter topic with the reason.
//
// One pipeline per event topic (inferences, outcomes, business-metrics),
// each in its own consumer group, runs this loop:
//
//  1. fetch messages until the batch has BatchRows rows or is BatchAge old;
//  2. decode each with schemas (chunks of messages split between two
//     goroutines, each with its own Decoder) and append it, in fetch
//     order, to an Arrow record, after the personal-data rules (package
//     personal: per model, named features and segment entries dropped or
//     HMAC-hashed; nothing is done when there are no rules); an invalid
//     event is set aside as a dead letter carrying
//     its original key, value and headers plus the reason headers below; an
//     event whose event_id is already in the batch is dropped;
//  3. insert the record with clickhouse-go (arrowch), with an
//     insert_deduplication_token naming the topic, the offset range of
//     every partition in the batch and a digest of its event ids, so a retry
//     of an insert that did reach ClickHouse is dropped, and a new batch that
//     covers the same offsets (a topic created again, a failover to a
//     cluster whose offsets repeat) is not;
//  4. write the dead letters, then commit the offsets.
//
// Steps 3 and 4 of one batch run while the next batch is fetched and
// decoded (1 and 2); there are two batches, so at most one is in flight and
// batches are inserted and committed one at a time, in order.
// A failure in 3, 4 or the commit is retried with capped exponential backoff
// and jitter; meanwhile the pipeline fills at most the one next batch
// (memory stays at two batches) and commits nothing. A crash anywhere before the commit makes Kafka
// redeliver the batch; the tables are ReplacingMergeTree on event_id, so a
// redelivered batch never double-counts under FINAL. Shutdown flushes the
// batch in hand and commits it, within ShutdownTimeout.
//
// Dead-letter headers: driftwatch-reason (a schemas.Reason code),
// driftwatch-error (the message), driftwatch-source-topic,
// driftwatch-source-partition, driftwatch-source-offset,
// driftwatch-dead-lettered-at (RFC 3339), and driftwatch-personal
// (HeaderPersonal: governed or withheld) when the personal-data rules
// changed the value: unless DeadLetterKeepPersonal is set, a dead letter's
// value (in the topic and the dead_letters table) has the rules applied,
// and one that does not parse is replaced by a note.
//
// Metrics (labels: topic, one of the three event topics; reason, one of
// schemas.DeadLetterReasons()):
//
//	driftwatch_ingest_events_consumed_total{topic}         messages read
//	driftwatch_ingest_events_written_total{topic}          rows ClickHouse acknowledged
//	driftwatch_ingest_events_dead_lettered_total{topic,reason}
//	driftwatch_ingest_duplicates_dropped_total{topic}      same event_id twice in a batch
//	driftwatch_ingest_unknown_fields_total{topic}          tolerated unknown fields
//	driftwatch_ingest_insert_errors_total{topic}           failed insert attempts
//	driftwatch_ingest_dead_letter_errors_total{topic}      failed dead-letter writes
//	driftwatch_ingest_commit_errors_total{topic}           failed offset commits
//	driftwatch_ingest_fetch_errors_total{topic}            failed fetches (broker down, rebalance)
//	driftwatch_ingest_batch_rows{topic}                    histogram of rows per insert
//	driftwatch_ingest_flush_duration_seconds{topic}        histogram of insert+dead letters+commit
//	driftwatch_ingest_consumer_lag{topic}                  messages not yet read
//	driftwatch_ingest_freshness_seconds                    now − newest event timestamp written
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/schemas"
)

// Options configure an Ingester.
type Options struct {
	// Kafka says where the brokers are and the topic prefix.
	Kafka kafkaio.Options
	// Settings are the service's settings (a zero field takes its
	// DefaultSettings value). Each topic's consumer group is the topic
	// prefix + ConsumerGroup + "." + the topic's short name, so
	// deployments that share a cluster under different topic prefixes
	// never share a group: driftwatch.ingest.inferences and so on.
	Settings
	// Conn is the ClickHouse connection, in the database holding the tables.
	Conn driver.Conn
	// RetentionDays is the tables' TTL (migration's retention_days): older
	// events are dead-lettered as older_than_retention instead of being
	// written and deleted at the next merge. 0 keeps every event.
	RetentionDays int
	// TableRetentionDays overrides RetentionDays per table (migration's
	// retention: {inferences: 30}).
	TableRetentionDays map[string]int
	// Kinds are the event kinds to ingest; default inference, outcome and
	// business metric.
	Kinds []schemas.Kind
	// RetryMin is the first backoff after a failed attempt (Settings'
	// RetryMax the longest). Default 100ms.
	RetryMin time.Duration
	// OpTimeout bounds one insert, dead-letter write or commit attempt.
	// Default 60s.
	OpTimeout time.Duration
	// ShutdownTimeout bounds the final flush. Default 30s.
	ShutdownTimeout time.Duration
	// Registerer receives the metrics; required.
	Registerer prometheus.Registerer
	// Logger; slog.Default when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	// newReader and newWriter replace kafka-go in unit tests.
	newReader func(topic, group string) (Reader, error)
	newWriter func(topic string) (Writer, error)
}

func (o *Options) setDefaults() {
	o.Settings = o.Settings.withDefaults()
	if len(o.Kinds) == 0 {
		o.Kinds = []schemas.Kind{schemas.KindInference, schemas.KindOutcome, schemas.KindBusinessMetric}
	}
	if o.RetryMin == 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = time.Minute
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// retention is how old an event of kind may be: its table's retention.
func (o *Options) retention(kind schemas.Kind) time.Duration {
	days := o.RetentionDays
	if d, ok := o.TableRetentionDays[tableName(kind)]; ok {
		days = d
	}
	return time.Duration(days) * 24 * time.Hour
}

func (o *Options) validate() error {
	var errs []error
	if o.Conn == nil && o.newReader == nil {
		errs = append(errs, errors.New("ingest: Conn is required"))
	}
	if o.Registerer == nil {
		errs = append(errs, errors.New("ingest: Registerer is required"))
	}
	if o.BatchRows < 1 {
		errs = append(errs, fmt.Errorf("ingest: BatchRows must be at least 1, got %d", o.BatchRows))
	}
	if o.BatchAge <= 0 || o.RetryMin <= 0 || o.RetryMax < o.RetryMin || o.OpTimeout <= 0 || o.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("ingest: BatchAge, RetryMin, OpTimeout and ShutdownTimeout must be positive and RetryMax at least RetryMin"))
	}
	for _, k := range o.Kinds {
		switch k {
		case schemas.KindInference, schemas.KindOutcome, schemas.KindBusinessMetric:
		default:
			errs = append(errs, fmt.Errorf("ingest: kind %s is not an ingested event kind", k))
		}
	}
	if o.newReader == nil {
		if err := o.Kafka.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Ingester runs one pipeline per event topic.
type Ingester struct {
	opts      Options
	m         *metrics
	pipelines []*pipeline
	readers   []Reader
	dlq       Writer
	closers   []func() error
}

// New validates opts and creates the Kafka readers and the dead-letter
// writer. It does not contact Kafka or ClickHouse yet.
func New(opts Options) (*Ingester, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	policy, err := opts.policy()
	if err != nil {
		return nil, err
	}
	ing := &Ingester{opts: opts}
	if opts.newReader == nil {
		opts.newReader = func(topic, group string) (Reader, error) { return kafkaio.NewReader(opts.Kafka, topic, group) }
	}
	if opts.newWriter == nil {
		opts.newWriter = func(topic string) (Writer, error) {
			w, err := kafkaio.NewWriter(opts.Kafka, topic)
			if err != nil {
				return nil, err
			}
			w.BatchBytes = schemas.DeadLetterMaxBytes
			ing.closers = append(ing.closers, w.Close)
			return w, nil
		}
	}
	var dlq Writer
	dlq, err = opts.newWriter(schemas.TopicDeadLetters)
	if err != nil {
		return nil, fmt.Errorf("dead-letter writer: %w", err)
	}
	ing.dlq = dlq
	var mu sync.Mutex
	lags := func() map[string]int64 {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int64{}
		for _, p := range ing.pipelines {
			out[p.topic] = p.reader.Stats().Lag
		}
		return out
	}
	ing.m = newMetrics(opts.Registerer, opts.Now, lags)
	for _, kind := range opts.Kinds {
		var decs [2]chunkDecoder
		for i := range decs {
			d, err := newDecoder(kind, schemas.Options{Limits: opts.limits(), Now: opts.Now}, opts.Kafka.Prefix(), policy)
			if err != nil {
				ing.Close()
				return nil, err
			}
			decs[i] = d
		}
		r, err := opts.newReader(kind.Topic(), opts.Kafka.Prefix()+opts.ConsumerGroup+"."+kind.Topic())
		if err != nil {
			ing.Close()
			return nil, fmt.Errorf("reader for %s: %w", kind.Topic(), err)
		}
		ing.readers = append(ing.readers, r)
		topic := opts.Kafka.Topic(kind.Topic())
		mu.Lock()
		p := &pipeline{
			topic: topic, kind: kind, reader: r, dlq: dlq, opts: &ing.opts, m: ing.m,
			log: opts.Logger.With("topic", topic),
			// Two batches alternate: one fills while the other is flushed.
			newTable: func() table {
				return newTable(kind, opts.Conn, opts.Now, opts.retention(kind))
			},
			policy:   policy,
			decoders: decs,
		}
		if opts.Conn != nil {
			p.deadLetterRows = func(ctx context.Context, rows []deadLetterRow, token string) error {
				return insertDeadLetters(ctx, opts.Conn, rows, token)
			}
		}
		ing.pipelines = append(ing.pipelines, p)
		mu.Unlock()
	}
	return ing, nil
}

// Topics returns the full names of the topics the Ingester reads and
// writes, for creating them.
func (ing *Ingester) Topics() []string {
	out := []string{ing.opts.Kafka.Topic(schemas.TopicDeadLetters)}
	for _, p := range ing.pipelines {
		out = append(out, p.topic)
	}
	return out
}

// Run runs every pipeline until ctx ends, then flushes and commits what
// each holds. It returns the first pipeline error; the others are stopped.
func (ing *Ingester) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	errs := make([]error, len(ing.pipelines))
	for i, p := range ing.pipelines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.run(ctx); err != nil {
				errs[i] = err
				cancel(err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close leaves the consumer groups and closes the writer.
func (ing *Ingester) Close() error {
	var errs []error
	for _, r := range ing.readers {
		if err := r.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range ing.closers {
		if err := c(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var _ Reader = (*kafka.Reader)(nil)
