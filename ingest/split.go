package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/driftwatch/driftwatch/schemas"
)

// refusedError is a request ClickHouse refused for what it holds: retrying
// it unchanged fails the same way (chclient.Permanent).
type refusedError struct {
	what string
	ex   *clickhouse.Exception // nil when the refusal came without one (HTTP 413)
	err  error
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("%s: ClickHouse refused it: %v", e.what, e.err)
}

func (e *refusedError) Unwrap() error { return e.err }

// refusal says what ClickHouse said, for a dead letter: "code 53: Type
// mismatch …".
func (e *refusedError) refusal() string {
	if e.ex == nil {
		return e.err.Error()
	}
	msg := e.ex.Message
	if i := strings.Index(msg, "Stack trace"); i > 0 {
		msg = strings.TrimSpace(msg[:i])
	}
	return fmt.Sprintf("code %d: %s", e.ex.Code, msg)
}

// groups cuts rows [0, n) into contiguous ranges that each touch at most
// limit distinct partitions (part(i) is row i's), keeping row order, so
// that no insert exceeds ClickHouse's max_partitions_per_insert_block. A
// batch of live traffic is one range; a backfill of one event per day is a
// range per limit days.
func groups(n, limit int, part func(i int) int32) [][2]int {
	var out [][2]int
	seen := map[int32]struct{}{}
	lo := 0
	for i := range n {
		p := part(i)
		if _, ok := seen[p]; !ok {
			if len(seen) == limit {
				out = append(out, [2]int{lo, i})
				clear(seen)
				lo = i
			}
			seen[p] = struct{}{}
		}
	}
	if n > lo {
		out = append(out, [2]int{lo, n})
	}
	return out
}

// rangeToken is the insert_deduplication_token of rows [lo, hi) of n: the
// batch's token when the range is the whole batch, else the token with the
// range appended, so that a retried split insert is deduplicated range by
// range and a replay of the same batch splits the same way.
func rangeToken(token string, lo, hi, n int) string {
	if lo == 0 && hi == n {
		return token
	}
	return fmt.Sprintf("%s|rows:%d-%d", token, lo, hi)
}

// insertRows inserts b's rows in blocks of at most MaxPartitionsPerInsert
// partitions. A block ClickHouse refuses is split in halves until every row
// it accepts is stored; a single row it refuses becomes a dead letter with
// reason rejected_by_storage, carrying the server's code and message. It
// returns how many rows were stored, and an error only when ctx ended.
func (p *pipeline) insertRows(ctx context.Context, b *batch) (int, error) {
	n := b.tbl.rows()
	if len(b.rowMsgs) != n {
		panic(fmt.Sprintf("BUG: batch of %s has %d rows and %d row messages", p.topic, n, len(b.rowMsgs)))
	}
	token := p.token(b)
	written := 0
	for _, g := range groups(n, p.opts.MaxPartitionsPerInsert, b.tbl.partition) {
		w, err := p.insertRange(ctx, b, g[0], g[1], token)
		written += w
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

func (p *pipeline) insertRange(ctx context.Context, b *batch, lo, hi int, token string) (int, error) {
	n := b.tbl.rows()
	tok := rangeToken(token, lo, hi, n)
	err := p.retry(ctx, "insert into ClickHouse", func(ctx context.Context) error { return b.tbl.insert(ctx, lo, hi, tok) }, p.m.insertErrors)
	var refused *refusedError
	if err == nil || !errors.As(err, &refused) {
		if err == nil {
			return hi - lo, nil
		}
		return 0, err
	}
	if hi-lo == 1 {
		msg := b.rowMsgs[lo]
		p.deadLetter(b, msg, &schemas.DecodeError{Reason: schemas.ReasonRejectedByStorage, Offset: -1,
			Msg: "ClickHouse refused the row: " + refused.refusal()})
		if p.flushLog.allow(p.opts.Now()) {
			p.log.Warn("ClickHouse refused a row; dead-lettered it and stored the rest of the batch", "partition", msg.Partition, "offset", msg.Offset, "err", refused.refusal())
		}
		return 0, nil
	}
	mid := lo + (hi-lo)/2
	w1, err := p.insertRange(ctx, b, lo, mid, token)
	if err != nil {
		return w1, err
	}
	w2, err := p.insertRange(ctx, b, mid, hi, token)
	return w1 + w2, err
}

// insertDeadLetterRows writes b's dead letters to the dead_letters table
// in blocks of at most MaxPartitionsPerInsert months (the table is
// PARTITION BY toYYYYMM(timestamp), the event time). A block ClickHouse
// refuses is logged and skipped: the same dead letters are already in the
// dead-letter topic, which is the record to replay from.
func (p *pipeline) insertDeadLetterRows(ctx context.Context, b *batch) error {
	n := len(b.dlRows)
	token := p.deadLetterToken(b)
	month := func(i int) int32 {
		t := b.dlRows[i].timestamp
		return int32(t.Year()*12 + int(t.Month()))
	}
	for _, g := range groups(n, p.opts.MaxPartitionsPerInsert, month) {
		rows, tok := b.dlRows[g[0]:g[1]], rangeToken(token, g[0], g[1], n)
		err := p.retry(ctx, "insert into dead_letters", func(ctx context.Context) error { return p.deadLetterRows(ctx, rows, tok) }, p.m.insertErrors)
		var refused *refusedError
		if errors.As(err, &refused) {
			p.log.Error("ClickHouse refused dead letters; they are in the dead-letter topic only", "rows", len(rows), "err", refused.refusal())
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}
