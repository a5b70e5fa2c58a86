package bench

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// queryStats is a driver.Conn that adds up the wall time of its
// statements by their first words (bench fleet -query-stats): where a
// cycle's time goes on the ClickHouse side.
type queryStats struct {
	driver.Conn
	mu  sync.Mutex
	on  bool
	sum map[string]*queryStat
}

type queryStat struct {
	n    int
	secs float64
}

func newQueryStats(c driver.Conn) *queryStats {
	return &queryStats{Conn: c, sum: map[string]*queryStat{}}
}

// record switches the counting on or off.
func (q *queryStats) record(on bool) {
	q.mu.Lock()
	q.on = on
	q.mu.Unlock()
}

// statementKey shortens a statement to what tells it apart: its first
// words and the tables it names.
func statementKey(sql string) string {
	f := strings.Fields(sql)
	head := strings.Join(f[:min(len(f), 4)], " ")
	var from []string
	for i, w := range f {
		if (strings.EqualFold(w, "FROM") || strings.EqualFold(w, "INTO")) && i+1 < len(f) && !strings.HasPrefix(f[i+1], "(") {
			t := strings.Trim(f[i+1], "(),")
			if !slicesContains(from, t) {
				from = append(from, t)
			}
		}
	}
	return fmt.Sprintf("%.48s … %s", head, strings.Join(from, ","))
}

func slicesContains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func (q *queryStats) add(sql string, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.on {
		return
	}
	k := statementKey(sql)
	s := q.sum[k]
	if s == nil {
		s = &queryStat{}
		q.sum[k] = s
	}
	s.n++
	s.secs += d.Seconds()
}

func (q *queryStats) Exec(ctx context.Context, sql string, args ...any) error {
	start := time.Now()
	err := q.Conn.Exec(ctx, sql, args...)
	q.add(sql, time.Since(start))
	return err
}

func (q *queryStats) Select(ctx context.Context, dest any, sql string, args ...any) error {
	start := time.Now()
	err := q.Conn.Select(ctx, dest, sql, args...)
	q.add(sql, time.Since(start))
	return err
}

func (q *queryStats) QueryRow(ctx context.Context, sql string, args ...any) driver.Row {
	start := time.Now()
	r := q.Conn.QueryRow(ctx, sql, args...)
	q.add(sql, time.Since(start))
	return r
}

func (q *queryStats) Query(ctx context.Context, sql string, args ...any) (driver.Rows, error) {
	start := time.Now()
	r, err := q.Conn.Query(ctx, sql, args...)
	if err != nil {
		q.add(sql, time.Since(start))
		return r, err
	}
	return &timedRows{Rows: r, done: func() { q.add(sql, time.Since(start)) }}, nil
}

func (q *queryStats) PrepareBatch(ctx context.Context, sql string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	start := time.Now()
	b, err := q.Conn.PrepareBatch(ctx, sql, opts...)
	if err != nil {
		q.add(sql, time.Since(start))
		return b, err
	}
	return &timedBatch{Batch: b, done: func() { q.add(sql, time.Since(start)) }}, nil
}

// timedBatch counts a batch insert's time from its preparation until it is
// sent (or aborted).
type timedBatch struct {
	driver.Batch
	once sync.Once
	done func()
}

func (b *timedBatch) Send() error {
	err := b.Batch.Send()
	b.once.Do(b.done)
	return err
}

func (b *timedBatch) Abort() error {
	err := b.Batch.Abort()
	b.once.Do(b.done)
	return err
}

// timedRows counts a query's time until its rows are closed.
type timedRows struct {
	driver.Rows
	once sync.Once
	done func()
}

func (r *timedRows) Close() error {
	err := r.Rows.Close()
	r.once.Do(r.done)
	return err
}

// print writes the statements by total time, most first.
func (q *queryStats) print(w io.Writer, cycles int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	keys := make([]string, 0, len(q.sum))
	total := 0.0
	for k, s := range q.sum {
		keys = append(keys, k)
		total += s.secs
	}
	sort.Slice(keys, func(i, j int) bool { return q.sum[keys[i]].secs > q.sum[keys[j]].secs })
	fmt.Fprintf(w, "statements of the incremental monitor's timed cycles: %.2fs per cycle in all (wall time of statements, summed over concurrent ones)\n", total/float64(max(1, cycles)))
	for _, k := range keys {
		s := q.sum[k]
		fmt.Fprintf(w, "  %7.3fs/cycle  %5d  %s\n", s.secs/float64(max(1, cycles)), s.n, k)
	}
}
