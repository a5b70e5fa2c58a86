package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/semaphore"

	"github.com/driftwatch/driftwatch/ingest/personal"
	"github.com/driftwatch/driftwatch/internal/chclient"
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

// table is one ClickHouse table's batch: it appends decoded events of one
// kind as columns and inserts them.
type table interface {
	// add appends event i of the chunk dec decoded last (msg is its
	// message). A *schemas.DecodeError means the event is invalid and
	// nothing was appended; dup reports a duplicate of an event already in
	// the batch (nothing appended either).
	add(dec chunkDecoder, i int, msg *kafka.Message) (info schemas.Info, dup bool, err error)
	rows() int
	// newest is the largest event timestamp in the batch.
	newest() time.Time
	// partition is row i's ClickHouse partition (the day of its
	// timestamp: the event tables are PARTITION BY toDate(timestamp)).
	partition(i int) int32
	// idDigest digests the event ids of the batch's rows, in order.
	idDigest() string
	// insert writes rows [lo, hi) of the batch, in the order they were
	// added; token is the insert_deduplication_token.
	insert(ctx context.Context, lo, hi int, token string) error
	reset()
}

// chunkDecoder validates and decodes a chunk of messages of one event kind
// into its own storage, where table.add picks them up. It is not safe for
// concurrent use; the pipeline gives each decoding goroutine its own.
type chunkDecoder interface {
	decodeChunk(msgs []kafka.Message)
}

// pipeline moves one topic into one table: fetch, decode, batch, insert,
// dead-letter, commit — in that order, so an offset is committed only once
// ClickHouse acknowledged every valid event below it and the dead-letter
// topic acknowledged every invalid one.
//
// Four goroutines: one fetches messages from kafka-go; one takes them in
// chunks, decodes each chunk's two halves in parallel (with a helper
// goroutine) and appends them in fetch order to the batch; one flushes
// (insert, dead letters, commit), so the next batch is decoded while the
// previous one is inserted. There are exactly two batches: at most one is
// being flushed while the other fills, and a full batch waits until the
// flush before it is done. Flushes run one at a time and in fetch order, so
// commits stay in offset order, and a batch is never flushed after the one
// before it failed.
type pipeline struct {
	topic    string
	kind     schemas.Kind
	reader   Reader
	dlq      Writer
	newTable func() table
	// deadLetterRows writes a batch's rejects to the dead_letters table;
	// nil writes none (unit tests without ClickHouse).
	deadLetterRows func(ctx context.Context, rows []deadLetterRow, token string) error
	// decoders are the pipeline's two chunk decoders: one runs in the
	// fetching goroutine, the other in a helper, so a chunk's two halves
	// decode in parallel.
	decoders [2]chunkDecoder
	opts     *Options
	// policy is the personal-data rules; nil when there are none.
	policy   *personal.Policy
	log      *slog.Logger
	m        *metrics
	fetchLog rateLimiter // used by the fetching goroutine only
	flushLog rateLimiter // used by the flushing goroutine only
}

// batch is what one ClickHouse insert and one commit cover.
type batch struct {
	tbl     table
	rowMsgs []kafka.Message // the message of each row, for rows ClickHouse refuses
	pending []kafka.Message // dead letters
	dlRows  []deadLetterRow // the same, for the dead_letters table
	last    map[int]kafka.Message
	first   map[int]int64
	msgs    int
	bytes   int       // of the messages read into it (msgBytes)
	dlHash  hash.Hash // SHA-256 of the dead letters' values, in order
	// hasher applies the personal-data rules to the dead letters' values;
	// nil when they keep their bytes. One per batch: a batch is used by one
	// goroutine at a time (fill, then flush).
	hasher *personal.Hasher
}

func (p *pipeline) newBatch() *batch {
	b := &batch{tbl: p.newTable(), last: map[int]kafka.Message{}, first: map[int]int64{}, dlHash: sha256.New()}
	if p.policy != nil && !p.opts.DeadLetterKeepPersonal {
		b.hasher = p.policy.NewHasher()
	}
	return b
}

func (b *batch) reset() {
	b.tbl.reset()
	clear(b.rowMsgs) // drop the values they hold
	b.rowMsgs = b.rowMsgs[:0]
	b.pending = b.pending[:0]
	b.dlRows = b.dlRows[:0]
	clear(b.last)
	clear(b.first)
	b.msgs = 0
	b.bytes = 0
	b.dlHash.Reset()
}

func (p *pipeline) run(ctx context.Context) error {
	// Flushes outlive ctx by up to ShutdownTimeout, so the batch in flight
	// and the one in hand are written and committed at shutdown.
	fctx, cancelFlush := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelFlush()
	stopTimer := context.AfterFunc(ctx, func() { time.AfterFunc(p.opts.ShutdownTimeout, cancelFlush) })
	defer stopTimer()

	// The fetcher and the helper stop when run returns.
	rctx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	fetched := make(chan kafka.Message, fetchQueue)
	queued := semaphore.NewWeighted(int64(p.opts.QueueBytes))
	go p.fetch(rctx, fetched, queued)
	halves := make(chan []kafka.Message)
	decoded := make(chan struct{})
	defer close(halves)
	go func() {
		for msgs := range halves {
			p.decoders[1].decodeChunk(msgs)
			decoded <- struct{}{}
		}
	}()
	d := &decoding{fetched: fetched, queued: queued, queueBytes: p.opts.QueueBytes, halves: halves, decoded: decoded}

	free := make(chan *batch, 2)
	free <- p.newBatch()
	free <- p.newBatch()
	full := make(chan *batch)
	flushed := make(chan error, 1)
	go func() {
		for b := range full {
			if err := p.flush(fctx, b); err != nil {
				flushed <- err
				return
			}
			b.reset()
			free <- b
		}
		flushed <- nil
	}()
	// handOver gives b to the flusher; false means the flusher failed.
	var flushErr error
	handOver := func(b *batch) bool {
		select {
		case full <- b:
			return true
		case flushErr = <-flushed:
			return false
		}
	}
	// finish stops the flusher after what it was given and returns its
	// error.
	finish := func() error {
		close(full)
		if flushErr != nil {
			return flushErr
		}
		return <-flushed
	}

	for {
		var b *batch
		select {
		case b = <-free:
		case flushErr = <-flushed:
			close(full)
			return p.flushError(ctx, flushErr)
		}
		if err := p.fill(ctx, b, d); err != nil {
			// Shutdown: flush what was read, after the batch in flight.
			if b.msgs > 0 && !handOver(b) {
				close(full)
				return p.flushError(ctx, flushErr)
			}
			return p.flushError(ctx, finish())
		}
		if b.msgs == 0 {
			free <- b
			continue
		}
		if !handOver(b) {
			close(full)
			return p.flushError(ctx, flushErr)
		}
	}
}

func (p *pipeline) flushError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("flush %s at shutdown (the batch will be redelivered): %w", p.topic, err)
	}
	return err
}

// fetchQueue is how many fetched messages wait for decoding at most;
// QueueBytes bounds their bytes.
const fetchQueue = 4096

// msgBytes is what a message holds in memory, near enough: key, value and
// headers.
func msgBytes(msg *kafka.Message) int {
	n := len(msg.Key) + len(msg.Value)
	for _, h := range msg.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// queuedBytes is what a message takes of the fetch queue's QueueBytes: its
// bytes, and the whole queue for a message larger than the queue (it then
// waits alone).
func queuedBytes(msg *kafka.Message, queueBytes int) int64 {
	return int64(min(msgBytes(msg), queueBytes))
}

// chunkMax is the most messages decoded as one chunk, chunkMaxBytes their
// most bytes (a chunk holds one message at least); chunkSplit the fewest
// that are split between two goroutines.
const (
	chunkMax      = 512
	chunkMaxBytes = 4 << 20
	chunkSplit    = 64
)

// fetch hands every message kafka-go fetches to out, in order, until ctx
// ends, holding at most QueueBytes of them: each takes its bytes from
// queued before it is sent, and fill gives them back when it takes it. A failed fetch (broker unreachable, group rebalancing) is counted,
// logged and retried: kafka-go reconnects by itself, and the batch in hand
// stays uncommitted until it is flushed.
func (p *pipeline) fetch(ctx context.Context, out chan<- kafka.Message, queued *semaphore.Weighted) {
	for {
		msg, err := p.reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.m.fetchErrors.WithLabelValues(p.topic).Inc()
			if p.fetchLog.allow(p.opts.Now()) {
				p.log.Warn("fetch failed, retrying", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(p.opts.RetryMin * 5):
			}
			continue
		}
		if queued.Acquire(ctx, queuedBytes(&msg, p.opts.QueueBytes)) != nil {
			return // ctx ended
		}
		select {
		case out <- msg:
		case <-ctx.Done():
			return
		}
	}
}

// decoding is what fill needs besides the batch: the fetched messages, the
// helper decoding goroutine, and the current chunk.
type decoding struct {
	fetched    <-chan kafka.Message
	queued     *semaphore.Weighted // the fetch queue's bytes
	queueBytes int
	halves     chan<- []kafka.Message
	decoded    <-chan struct{}
	chunk      []kafka.Message
}

// take is msg, taken off the fetch queue: its bytes go back to the queue.
func (d *decoding) take(msg kafka.Message) kafka.Message {
	d.queued.Release(queuedBytes(&msg, d.queueBytes))
	return msg
}

// fill reads messages into b until it is full (BatchRows rows, or
// BatchBytes of messages) or old enough. It returns nil when b should be
// flushed and ctx's error when ctx ended.
func (p *pipeline) fill(ctx context.Context, b *batch, d *decoding) error {
	age := time.NewTimer(p.opts.BatchAge)
	defer age.Stop()
	consumed := p.m.consumed.WithLabelValues(p.topic)
	for {
		// Every message adds at most one row or one dead letter, so a
		// chunk of this size cannot overfill the batch.
		room := p.opts.BatchRows - max(b.tbl.rows(), len(b.pending))
		if room <= 0 || b.bytes >= p.opts.BatchBytes {
			return nil
		}
		// A chunk stops at chunkMaxBytes and at what the batch has room
		// for, so a batch overshoots BatchBytes by one message at most.
		roomBytes := min(chunkMaxBytes, p.opts.BatchBytes-b.bytes)
		chunk, chunkBytes := d.chunk[:0], 0
		select {
		case msg := <-d.fetched:
			chunk = append(chunk, d.take(msg))
			chunkBytes += msgBytes(&msg)
		case <-age.C:
			return nil // the batch is old enough
		case <-ctx.Done():
			return ctx.Err()
		}
	more:
		for len(chunk) < min(room, chunkMax) && chunkBytes < roomBytes {
			select {
			case msg := <-d.fetched:
				chunk = append(chunk, d.take(msg))
				chunkBytes += msgBytes(&msg)
			default:
				break more
			}
		}
		d.chunk = chunk
		b.bytes += chunkBytes
		consumed.Add(float64(len(chunk)))
		p.decodeChunk(d, chunk)
		for i := range chunk {
			msg := &chunk[i]
			b.track(*msg)
			dec, j := p.decoders[0], i
			if len(chunk) >= chunkSplit && i >= len(chunk)/2 {
				dec, j = p.decoders[1], i-len(chunk)/2
			}
			info, dup, err := b.tbl.add(dec, j, msg)
			switch {
			case err != nil:
				p.deadLetter(b, *msg, err)
			case dup:
				p.m.duplicates.WithLabelValues(p.topic).Inc()
			default:
				b.rowMsgs = append(b.rowMsgs, *msg)
			}
			if info.UnknownFields > 0 {
				p.m.unknownFields.WithLabelValues(p.topic).Add(float64(info.UnknownFields))
			}
		}
		clear(chunk) // the batch holds what it keeps; let the rest go
	}
}

// decodeChunk decodes chunk: a large one in two halves, the second in the
// helper goroutine.
func (p *pipeline) decodeChunk(d *decoding, chunk []kafka.Message) {
	if len(chunk) < chunkSplit {
		p.decoders[0].decodeChunk(chunk)
		return
	}
	h := len(chunk) / 2
	d.halves <- chunk[h:]
	p.decoders[0].decodeChunk(chunk[:h])
	<-d.decoded
}

func header(msg kafka.Message, key string) string {
	for _, h := range msg.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (b *batch) track(msg kafka.Message) {
	if _, ok := b.first[msg.Partition]; !ok {
		b.first[msg.Partition] = msg.Offset
	}
	b.last[msg.Partition] = msg
	b.msgs++
}

func (p *pipeline) deadLetter(b *batch, msg kafka.Message, err error) {
	reason := string(schemas.ReasonInvalidJSON)
	if r, ok := schemas.ReasonOf(err); ok {
		reason = string(r)
	}
	p.m.deadLettered.WithLabelValues(p.topic, reason).Inc()
	headers := make([]kafka.Header, 0, len(msg.Headers)+6)
	headers = append(headers, msg.Headers...)
	headers = append(headers,
		kafka.Header{Key: schemas.HeaderReason, Value: []byte(reason)},
		kafka.Header{Key: schemas.HeaderError, Value: []byte(err.Error())},
		kafka.Header{Key: schemas.HeaderSourceTopic, Value: []byte(msg.Topic)},
		kafka.Header{Key: schemas.HeaderSourcePartition, Value: []byte(strconv.Itoa(msg.Partition))},
		kafka.Header{Key: schemas.HeaderSourceOffset, Value: []byte(strconv.FormatInt(msg.Offset, 10))},
		kafka.Header{Key: schemas.HeaderDeadLetteredAt, Value: []byte(p.opts.Now().UTC().Format(time.RFC3339Nano))},
	)
	b.dlHash.Write(msg.Value)
	b.dlHash.Write([]byte{0})
	row := newDeadLetterRow(p.kind, msg, reason, err, p.opts.Now())
	if b.hasher != nil {
		value, changed, withheld := b.hasher.Payload(msg.Value, row.modelID)
		if changed {
			msg.Value = value
			row.setPayload(value)
			verdict := personalGoverned
			if withheld {
				verdict = personalWithheld
			}
			headers = append(headers, kafka.Header{Key: HeaderPersonal, Value: []byte(verdict)})
		}
	}
	b.pending = append(b.pending, kafka.Message{Key: msg.Key, Value: msg.Value, Headers: headers})
	b.dlRows = append(b.dlRows, row)
}

// token identifies the batch by the offsets it covers and by a digest of
// the event ids it stores, so a retried insert of the same messages is
// dropped by ClickHouse's insert deduplication, while a different batch
// that happens to cover the same offsets (a topic deleted and created
// again, a failover to a cluster whose offsets repeat) is not.
func (p *pipeline) token(b *batch) string {
	parts := make([]int, 0, len(b.last))
	for part := range b.last {
		parts = append(parts, part)
	}
	sort.Ints(parts)
	var sb strings.Builder
	sb.WriteString(p.topic)
	for _, part := range parts {
		fmt.Fprintf(&sb, "|%d:%d-%d", part, b.first[part], b.last[part].Offset)
	}
	sb.WriteString("|ids:")
	sb.WriteString(b.tbl.idDigest())
	return sb.String()
}

// deadLetterToken is the token of b's dead_letters rows: the batch's token
// and a digest of the dead letters' values (they may have no event id).
func (p *pipeline) deadLetterToken(b *batch) string {
	return p.token(b) + "|dead_letters:" + hex.EncodeToString(b.dlHash.Sum(nil)[:16])
}

// flush inserts b, writes its dead letters (to the topic, then to the
// dead_letters table) and commits its offsets. It
// returns an error only when ctx ended first.
func (p *pipeline) flush(ctx context.Context, b *batch) error {
	if b.msgs == 0 {
		return nil
	}
	start := p.opts.Now()
	rows := b.tbl.rows()
	if rows > 0 {
		written, err := p.insertRows(ctx, b)
		if err != nil {
			return err
		}
		p.m.written.WithLabelValues(p.topic).Add(float64(written))
		if written > 0 {
			p.m.setNewest(p.topic, b.tbl.newest())
		}
	}
	if len(b.pending) > 0 {
		write := func(ctx context.Context) error {
			err := p.dlq.WriteMessages(ctx, b.pending...)
			if err != nil && tooLarge(err) && shrinkDeadLetters(b.pending) {
				p.log.Warn("dead-letter topic refused an oversized value; truncated it (the source offset is in the headers)", "max_bytes", deadLetterTruncateBytes)
				err = p.dlq.WriteMessages(ctx, b.pending...)
			}
			return err
		}
		if err := p.retry(ctx, "write dead letters", write, p.m.dlqErrors); err != nil {
			return err
		}
		if p.deadLetterRows != nil {
			if err := p.insertDeadLetterRows(ctx, b); err != nil {
				return err
			}
		}
	}
	commits := make([]kafka.Message, 0, len(b.last))
	for _, m := range b.last {
		commits = append(commits, m)
	}
	if err := p.retry(ctx, "commit offsets", func(ctx context.Context) error { return p.reader.CommitMessages(ctx, commits...) }, p.m.commitErrors); err != nil {
		return err
	}
	p.m.batchRows.WithLabelValues(p.topic).Observe(float64(rows))
	p.m.flushSeconds.WithLabelValues(p.topic).Observe(p.opts.Now().Sub(start).Seconds())
	p.log.Debug("batch flushed", "topic", p.topic, "rows", rows, "dead_letters", len(b.pending), "messages", b.msgs, "took", p.opts.Now().Sub(start))
	return nil
}

// retry calls op until it succeeds, fails permanently (a *refusedError:
// ClickHouse refused the request for what it holds, see chclient.Classify)
// or ctx ends, backing off exponentially
// from RetryMin to RetryMax with jitter. While it retries nothing is
// committed, and the pipeline fetches at most one more batch, so memory
// stays bounded by two batches.
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
		class, ex := chclient.Classify(err)
		if class == chclient.Permanent {
			return &refusedError{what: what, ex: ex, err: err}
		}
		if p.flushLog.allow(p.opts.Now()) {
			if class == chclient.Setup {
				p.log.Error("retrying; ClickHouse refuses every request until an operator fixes the deployment", "topic", p.topic, "op", what, "attempt", attempt, "next_in", delay, "code", ex.Code, "err", err)
			} else {
				p.log.Warn("retrying", "topic", p.topic, "op", what, "attempt", attempt, "next_in", delay, "err", err)
			}
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
