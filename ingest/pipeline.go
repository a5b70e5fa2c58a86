package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/schemas"
)

// Reader is the part of a kafka-go consumer-group reader a pipeline uses.
type Reader interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
	Stats() kafka.ReaderStats
	Close() error
}

// Writer is the part of a kafka-go writer the dead-letter path uses.
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// table is one ClickHouse table's batch: it decodes Kafka messages of one
// event kind into columns and inserts them.
type table interface {
	// add decodes msg and appends its row. A *schemas.DecodeError means the
	// event is invalid and nothing was appended; dup reports a duplicate of
	// an event already in the batch (nothing appended either).
	add(msg *kafka.Message) (info schemas.Info, dup bool, err error)
	rows() int
	// newest is the largest event timestamp in the batch.
	newest() time.Time
	// insert writes the batch; token is the insert_deduplication_token.
	insert(ctx context.Context, token string) error
	reset()
}

// pipeline moves one topic into one table: fetch, decode, batch, insert,
// dead-letter, commit — in that order, so an offset is committed only once
// ClickHouse acknowledged every valid event below it and the dead-letter
// topic acknowledged every invalid one.
type pipeline struct {
	topic   string
	kind    schemas.Kind
	reader  Reader
	dlq     Writer
	tbl     table
	opts    *Options
	prefix  string
	log     *slog.Logger
	m       *metrics
	pending []kafka.Message // dead letters of the current batch
	last    map[int]kafka.Message
	first   map[int]int64
	msgs    int
	started time.Time
	errLog  rateLimiter
}

func (p *pipeline) run(ctx context.Context) error {
	p.last = map[int]kafka.Message{}
	p.first = map[int]int64{}
	for {
		if err := p.fill(ctx); err != nil {
			if ctx.Err() == nil {
				return err
			}
			// Shutdown: flush what was read, under the shutdown timeout.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.ShutdownTimeout)
			ferr := p.flush(sctx)
			cancel()
			if ferr != nil {
				return fmt.Errorf("flush %s at shutdown (the batch will be redelivered): %w", p.topic, ferr)
			}
			return nil
		}
		if err := p.flush(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // shutting down mid-retry: nothing was committed, Kafka redelivers
			}
			return err
		}
	}
}

// fill reads messages until the batch is full or old enough. It returns nil
// when the batch should be flushed and ctx's error when ctx ended.
func (p *pipeline) fill(ctx context.Context) error {
	p.started = p.opts.Now()
	fctx, cancel := context.WithTimeout(ctx, p.opts.BatchAge)
	defer cancel()
	for p.tbl.rows() < p.opts.BatchRows && len(p.pending) < p.opts.BatchRows {
		msg, err := p.reader.FetchMessage(fctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return nil // the batch is old enough
			}
			// The broker is unreachable or the group is rebalancing:
			// kafka-go reconnects by itself, so wait and fetch again.
			// The batch in hand stays uncommitted until it is flushed.
			p.m.fetchErrors.WithLabelValues(p.topic).Inc()
			if p.errLog.allow(p.opts.Now()) {
				p.log.Warn("fetch failed, retrying", "err", err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-fctx.Done():
				return nil
			case <-time.After(p.opts.RetryMin * 5):
			}
			continue
		}
		p.track(msg)
		p.m.consumed.WithLabelValues(p.topic).Inc()
		if _, err := schemas.KindForMessage(header(msg, schemas.SchemaHeader), msg.Topic, p.prefix); err != nil {
			p.deadLetter(msg, err)
			continue
		}
		info, dup, err := p.tbl.add(&msg)
		switch {
		case err != nil:
			p.deadLetter(msg, err)
		case dup:
			p.m.duplicates.WithLabelValues(p.topic).Inc()
		}
		if info.UnknownFields > 0 {
			p.m.unknownFields.WithLabelValues(p.topic).Add(float64(info.UnknownFields))
		}
	}
	return nil
}

func header(msg kafka.Message, key string) string {
	for _, h := range msg.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (p *pipeline) track(msg kafka.Message) {
	if _, ok := p.first[msg.Partition]; !ok {
		p.first[msg.Partition] = msg.Offset
	}
	p.last[msg.Partition] = msg
	p.msgs++
}

func (p *pipeline) deadLetter(msg kafka.Message, err error) {
	reason := string(schemas.ReasonInvalidJSON)
	if r, ok := schemas.ReasonOf(err); ok {
		reason = string(r)
	}
	p.m.deadLettered.WithLabelValues(p.topic, reason).Inc()
	headers := make([]kafka.Header, 0, len(msg.Headers)+6)
	headers = append(headers, msg.Headers...)
	headers = append(headers,
		kafka.Header{Key: HeaderReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderError, Value: []byte(err.Error())},
		kafka.Header{Key: HeaderSourceTopic, Value: []byte(msg.Topic)},
		kafka.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(msg.Partition))},
		kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(msg.Offset, 10))},
		kafka.Header{Key: HeaderDeadLetteredAt, Value: []byte(p.opts.Now().UTC().Format(time.RFC3339Nano))},
	)
	p.pending = append(p.pending, kafka.Message{Key: msg.Key, Value: msg.Value, Headers: headers})
}

// token identifies the batch by the offsets it covers, so a retried insert
// of the same messages is dropped by ClickHouse's insert deduplication.
func (p *pipeline) token() string {
	parts := make([]int, 0, len(p.last))
	for part := range p.last {
		parts = append(parts, part)
	}
	sort.Ints(parts)
	var b strings.Builder
	b.WriteString(p.topic)
	for _, part := range parts {
		fmt.Fprintf(&b, "|%d:%d-%d", part, p.first[part], p.last[part].Offset)
	}
	return b.String()
}

func (p *pipeline) flush(ctx context.Context) error {
	if p.msgs == 0 {
		return nil
	}
	start := p.opts.Now()
	rows := p.tbl.rows()
	if rows > 0 {
		token := p.token()
		if err := p.retry(ctx, "insert into ClickHouse", func(ctx context.Context) error { return p.tbl.insert(ctx, token) }, p.m.insertErrors); err != nil {
			return err
		}
		p.m.written.WithLabelValues(p.topic).Add(float64(rows))
		p.m.setNewest(p.topic, p.tbl.newest())
	}
	if len(p.pending) > 0 {
		write := func(ctx context.Context) error {
			err := p.dlq.WriteMessages(ctx, p.pending...)
			if err != nil && tooLarge(err) && shrinkDeadLetters(p.pending) {
				p.log.Warn("dead-letter topic refused an oversized value; truncated it (the source offset is in the headers)", "max_bytes", deadLetterTruncateBytes)
				err = p.dlq.WriteMessages(ctx, p.pending...)
			}
			return err
		}
		if err := p.retry(ctx, "write dead letters", write, p.m.dlqErrors); err != nil {
			return err
		}
	}
	commits := make([]kafka.Message, 0, len(p.last))
	for _, m := range p.last {
		commits = append(commits, m)
	}
	if err := p.retry(ctx, "commit offsets", func(ctx context.Context) error { return p.reader.CommitMessages(ctx, commits...) }, p.m.commitErrors); err != nil {
		return err
	}
	p.m.batchRows.WithLabelValues(p.topic).Observe(float64(rows))
	p.m.flushSeconds.WithLabelValues(p.topic).Observe(p.opts.Now().Sub(start).Seconds())
	p.log.Debug("batch flushed", "topic", p.topic, "rows", rows, "dead_letters", len(p.pending), "messages", p.msgs, "took", p.opts.Now().Sub(start))
	p.tbl.reset()
	p.pending = p.pending[:0]
	clear(p.last)
	clear(p.first)
	p.msgs = 0
	return nil
}

// retry calls op until it succeeds or ctx ends, backing off exponentially
// from RetryMin to RetryMax with jitter. While it retries the pipeline does
// not fetch, so memory stays bounded by one batch and nothing is committed.
func (p *pipeline) retry(ctx context.Context, what string, op func(context.Context) error, errs counterVec) error {
	delay := p.opts.RetryMin
	for attempt := 1; ; attempt++ {
		octx, cancel := context.WithTimeout(ctx, p.opts.OpTimeout)
		err := op(octx)
		cancel()
		if err == nil {
			if attempt > 1 {
				p.log.Info("recovered", "topic", p.topic, "op", what, "attempts", attempt)
			}
			return nil
		}
		errs.WithLabelValues(p.topic).Inc()
		if ctx.Err() != nil {
			return fmt.Errorf("%s for %s: %w (last error: %v)", what, p.topic, ctx.Err(), err)
		}
		if p.errLog.allow(p.opts.Now()) {
			p.log.Warn("retrying", "topic", p.topic, "op", what, "attempt", attempt, "next_in", delay, "err", err)
		}
		wait := delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s for %s: %w (last error: %v)", what, p.topic, ctx.Err(), err)
		case <-time.After(wait):
		}
		delay = min(delay*2, p.opts.RetryMax)
	}
}

// rateLimiter lets one log line through per interval.
type rateLimiter struct {
	next time.Time
}

func (r *rateLimiter) allow(now time.Time) bool {
	if now.Before(r.next) {
		return false
	}
	r.next = now.Add(10 * time.Second)
	return true
}
