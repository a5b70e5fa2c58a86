package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/loadgen"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/internal/teststack"
)

// world is a private Kafka broker, a private ClickHouse and the ingest
// binary, so a test can kill or restart any of them.
type world struct {
	kafka  *teststack.Kafka
	ch     *teststack.ClickHouse
	bin    string
	env    []string
	ingest *teststack.Process
	kopts  kafkaio.Options
	conn   driver.Conn
	http   string

	mu       sync.Mutex
	launched []*teststack.Process // by launchIngest, stopped at cleanup
}

func newWorld(t *testing.T) *world {
	t.Helper()
	k := teststack.StartKafka(t)
	w := newWorldOn(t, k.Brokers())
	w.kafka = k
	return w
}

// newWorldOn is newWorld with the Kafka cluster at brokers, started by the
// caller.
func newWorldOn(t *testing.T, brokers []string) *world {
	t.Helper()
	w := &world{ch: teststack.StartClickHouse(t), bin: teststack.Build(t, "./services/ingest")}
	w.http = "127.0.0.1:" + strconv.Itoa(teststack.FreePort(t))
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, p := range w.launched {
			_ = p.Stop(30 * time.Second)
			if t.Failed() {
				out := p.Output()
				t.Logf("output of %s:\n%s", p.Name, out[max(0, len(out)-4000):])
			}
		}
	})
	w.kopts = kafkaio.Options{Brokers: brokers}
	w.env = []string{
		"DRIFTWATCH_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"DRIFTWATCH_CLICKHOUSE_URL=" + w.ch.URL("driftwatch"),
		"DRIFTWATCH_HTTP_ADDR=" + w.http,
		"DRIFTWATCH_INGEST_BATCH_ROWS=5000",
		"DRIFTWATCH_INGEST_BATCH_AGE=200ms",
		"DRIFTWATCH_INGEST_RETRY_MAX=2s",
		"DRIFTWATCH_LOG_LEVEL=info",
	}
	return w
}

func (w *world) startIngest(t *testing.T) {
	t.Helper()
	w.ingest = teststack.Start(t, "ingest", w.bin, w.env)
	teststack.WaitHTTP(t, "http://"+w.http+"/readyz", 90*time.Second, w.ingest)
	if w.conn == nil {
		conn, err := chclient.Open(context.Background(), chclient.Config{URL: w.ch.URL("driftwatch")}, false)
		if err != nil {
			t.Fatal(err)
		}
		w.conn = conn
		t.Cleanup(func() { conn.Close() })
	}
}

// launchIngest starts another ingest process for code off the test
// goroutine: it returns an error rather than failing the test. The
// process is stopped at cleanup like startIngest's.
func (w *world) launchIngest() (*teststack.Process, error) {
	p, err := teststack.Launch("ingest", w.bin, w.env)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.launched = append(w.launched, p)
	w.mu.Unlock()
	if err := teststack.PollHTTP(context.Background(), "http://"+w.http+"/readyz", 90*time.Second, p); err != nil {
		return nil, err
	}
	return p, nil
}

func (w *world) count(t *testing.T, q string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n uint64
	if err := w.conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0 // ClickHouse may be down on purpose
	}
	return n
}

// produce writes every event of gen to Kafka, calling hook after each
// thousand inferences, and returns the generator's stats.
func (w *world) produce(t *testing.T, gen *loadgen.Generator, ticks int64, hook func(sent int64)) {
	t.Helper()
	writers := map[string]*kafka.Writer{}
	defer func() {
		for _, wr := range writers {
			wr.Close()
		}
	}()
	ctx := context.Background()
	var batch = map[string][]kafka.Message{}
	flush := func() {
		for topic, msgs := range batch {
			wr := writers[topic]
			if wr == nil {
				var err error
				if wr, err = kafkaio.NewWriter(w.kopts, topic); err != nil {
					t.Fatal(err)
				}
				wr.MaxAttempts = 50 // rides out a broker restart
				writers[topic] = wr
			}
			// A producer rides out the broker's restart: the messages
			// kafka-go gave up on (a partition without a leader until
			// the restarted broker has elected one) are sent again.
			pending, deadline := msgs, time.Now().Add(2*time.Minute)
			for len(pending) > 0 {
				err := wr.WriteMessages(ctx, pending...)
				var we kafka.WriteErrors
				if err == nil || !errors.As(err, &we) || time.Now().After(deadline) {
					if err != nil {
						t.Fatalf("produce to %s: %v", topic, err)
					}
					break
				}
				var again []kafka.Message
				for i, e := range we {
					if e != nil {
						again = append(again, pending[i])
					}
				}
				pending = again
				time.Sleep(time.Second)
			}
			batch[topic] = msgs[:0]
		}
	}
	for gen.Ticks() < ticks {
		ev := gen.Next()
		msg := kafka.Message{Key: ev.Key, Value: ev.Value}
		for _, h := range ev.Headers {
			msg.Headers = append(msg.Headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
		batch[ev.Topic] = append(batch[ev.Topic], msg)
		if gen.Ticks()%1000 == 0 && len(batch["inferences"]) > 0 {
			flush()
			if hook != nil {
				hook(gen.Ticks())
			}
		}
	}
	flush()
}

func (w *world) waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// eventTopics are the short names of the topics ingest reads.
var eventTopics = []string{"inferences", "outcomes", "business-metrics"}

// committed is the sum of the offsets ingest's consumer groups committed
// over the event topics.
func (w *world) committed() (int64, error) {
	var n int64
	for _, topic := range eventTopics {
		c, err := teststack.Committed(context.Background(), w.kopts.Brokers, w.kopts.Prefix()+"ingest."+topic, w.kopts.Topic(topic))
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

// ends is the number of messages written to the event topics.
func (w *world) ends() (int64, error) {
	var n int64
	for _, topic := range eventTopics {
		e, err := teststack.EndOffsets(context.Background(), w.kopts.Brokers, w.kopts.Topic(topic))
		if err != nil {
			return 0, err
		}
		n += e
	}
	return n, nil
}

// metric is the sum of the ingest process's series of name.
func (w *world) metric(name string) (float64, error) {
	return teststack.MetricSum(context.Background(), w.http, name)
}

// checkExact compares the event ids in ClickHouse with the unique valid
// inferences the generator produced.
func (w *world) checkExact(t *testing.T, gen *loadgen.Generator) {
	t.Helper()
	want := gen.InferenceIDs()
	w.waitFor(t, fmt.Sprintf("%d inferences under FINAL", len(want)), 6*time.Minute, func() bool {
		return w.count(t, "SELECT count() FROM inferences FINAL") >= uint64(len(want))
	})
	rows, err := w.conn.Query(context.Background(), "SELECT event_id FROM inferences FINAL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := make([]string, 0, len(want))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	sort.Strings(got)
	want = append([]string(nil), want...)
	sort.Strings(want)
	if len(got) != len(want) {
		t.Fatalf("ClickHouse holds %d event ids under FINAL, %d unique valid inferences were sent", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("event id sets differ at %d: ClickHouse %q, sent %q", i, got[i], want[i])
		}
	}
	raw := w.count(t, "SELECT count() FROM inferences")
	t.Logf("%d unique inferences; %d rows before FINAL (redelivered or cross-batch duplicates: %d)", len(want), raw, raw-uint64(len(want)))
}

func generator(t *testing.T, dupShare float64) *loadgen.Generator {
	t.Helper()
	cfg := loadgen.DefaultConfig()
	cfg.Seed = uint64(testenv.Seed(t))
	cfg.Models = 3
	cfg.DuplicateShare = dupShare
	cfg.Start = time.Now().UTC().Add(-2 * time.Hour)
	cfg.Step = time.Millisecond
	cfg.Outcomes.Share = 0.2
	cfg.RecordIDs = true
	g, err := loadgen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestExactlyOnceAcrossSIGKILL sends 200,000 inferences with 5 % producer
// duplicates while the ingest process is killed with SIGKILL and
// restarted; afterwards ClickHouse holds exactly the unique valid events.
// Each of three kills hits work in flight: the killed process had read
// messages (its consumed counter, read just before the kill) beyond the
// offsets committed when it died, which the next process reads again.
func TestExactlyOnceAcrossSIGKILL(t *testing.T) {
	w := newWorld(t)
	w.startIngest(t)
	gen := generator(t, 0.05)
	const ticks = 200_000
	// A kill that found nothing in flight (the commit raced the kill)
	// proves nothing: up to maxKills are made to get three that did.
	killAt := []uint64{30_000, 80_000, 130_000}
	const maxKills = 6
	type kill struct {
		rows        uint64 // inferences rows in ClickHouse before the kill
		start, read int64  // offsets the process started at, and had read to
		committed   int64  // offsets committed once it was dead
		inFlight    int64  // read - committed: read again by the next
	}
	var (
		mu       sync.Mutex
		kills    []kill
		consumed float64 // by the killed processes, read before each kill
	)
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		// Off the test goroutine: errors come back on done, never t.Fatal.
		done <- func() error {
			var start int64 // the first process starts at offset 0
			proven := 0
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return errors.New("stopped")
				case <-tick.C:
				}
				n := w.count(t, "SELECT count() FROM inferences")
				if n < killAt[proven] {
					continue
				}
				// Kill only while the process is behind what it read (the
				// check before the kill is a hint, the one after it the
				// proof).
				c, err := w.committed()
				if err != nil {
					continue
				}
				got, err := w.metric("driftwatch_ingest_events_consumed_total")
				if err != nil || start+int64(got) <= c {
					continue
				}
				mu.Lock()
				w.ingest.Kill() // SIGKILL: no flush, no commit
				mu.Unlock()
				committed, err := w.committed()
				if err != nil {
					return fmt.Errorf("after kill %d: %w", len(kills)+1, err)
				}
				k := kill{rows: n, start: start, read: start + int64(got), committed: committed}
				k.inFlight = k.read - k.committed
				mu.Lock()
				kills = append(kills, k)
				consumed += got
				mu.Unlock()
				if k.inFlight > 0 {
					proven++
				}
				p, err := w.launchIngest()
				if err != nil {
					return err
				}
				mu.Lock()
				w.ingest = p
				mu.Unlock()
				start = committed
				if proven == len(killAt) {
					return nil
				}
				if len(kills) == maxKills {
					return fmt.Errorf("%d kills, %d of them with messages in flight", len(kills), proven)
				}
			}
		}()
	}()
	w.produce(t, gen, ticks, nil)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("killing ingest: %v", err)
		}
	case <-time.After(10 * time.Minute): // a bound, not a timing: a kill costs a 30 s session timeout per group
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("only %d kills happened: %+v", len(kills), kills)
	}
	w.checkExact(t, gen)

	mu.Lock()
	defer mu.Unlock()
	for i, k := range kills {
		t.Logf("SIGKILL %d at %d rows: started at offset %d, read to %d, %d committed: %d messages in flight, read again by the next process", i+1, k.rows, k.start, k.read, k.committed, k.inFlight)
	}
	// Read twice: the processes together consumed more messages than the
	// topics hold (the killed ones' counts are lower bounds).
	w.waitFor(t, "every message committed", 2*time.Minute, func() bool {
		c, err1 := w.committed()
		e, err2 := w.ends()
		return err1 == nil && err2 == nil && c == e
	})
	last, err := w.metric("driftwatch_ingest_events_consumed_total")
	if err != nil {
		t.Fatal(err)
	}
	total, err := w.ends()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages in the topics; consumed %.0f in all by %d processes: at least %.0f consumed twice", total, consumed+last, len(kills)+1, consumed+last-float64(total))
	if !(consumed+last > float64(total)) {
		t.Errorf("the processes consumed %.0f messages of %d: none was redelivered, the kills hit no work in flight", consumed+last, total)
	}
}

// TestRidesOutClickHouseOutage stops ClickHouse for 20 s while events keep
// arriving; ingest must pause, keep its memory, and finish by itself.
// The outage hits work in flight: ingest's inserts fail and are counted
// (driftwatch_ingest_insert_errors_total, each retried), and while
// ClickHouse is down nothing is written and no offset is committed,
// though messages wait in Kafka.
func TestRidesOutClickHouseOutage(t *testing.T) {
	w := newWorld(t)
	w.startIngest(t)
	gen := generator(t, 0.01)
	var (
		stopped, failed       bool
		before                float64 // failed inserts when ClickHouse stopped
		committed             int64
		written, insertErrors float64
	)
	// Once an insert has failed, ingest is in the outage: from then on it
	// may neither write nor commit. What it had done by then is recorded.
	inOutage := func() bool {
		if n, err := w.metric("driftwatch_ingest_insert_errors_total"); err != nil || !(n > before) {
			return false
		}
		var err1, err2, err3 error
		committed, err1 = w.committed()
		written, err2 = w.metric("driftwatch_ingest_events_written_total")
		insertErrors, err3 = w.metric("driftwatch_ingest_insert_errors_total")
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatal(err)
		}
		return true
	}
	w.produce(t, gen, 60_000, func(sent int64) {
		switch {
		case failed || sent < 20_000:
			return
		case stopped:
			failed = inOutage()
			return
		}
		stopped = true
		// The outage must find ingest consuming: a new consumer group on
		// a fresh broker can take a while to be served on a loaded machine.
		w.waitFor(t, "ingest consuming", 3*time.Minute, func() bool {
			n, err := w.metric("driftwatch_ingest_events_consumed_total")
			return err == nil && n > 0
		})
		var err error
		if before, err = w.metric("driftwatch_ingest_insert_errors_total"); err != nil {
			t.Fatal(err)
		}
		w.ch.Stop(t)
		t.Log("ClickHouse stopped for 20 s")
		// Production goes on: an ingest that had written every message
		// sent so far has nothing to insert, and no insert to fail, until
		// more arrive (two CI runs waited two minutes for one, the
		// producer held in this hook).
	})
	if !failed {
		w.waitFor(t, "a failed insert", 2*time.Minute, inOutage)
	}
	time.Sleep(20 * time.Second) // the outage, not a figure checked
	if w.ingest.Exited() {
		t.Fatalf("ingest exited during the outage:\n%s", w.ingest.Output())
	}
	committedLater, err1 := w.committed()
	writtenLater, err2 := w.metric("driftwatch_ingest_events_written_total")
	insertErrorsLater, err3 := w.metric("driftwatch_ingest_insert_errors_total")
	ends, err4 := w.ends()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		t.Fatal(err)
	}
	t.Logf("during the outage: committed %d → %d of %d messages, written %.0f → %.0f, failed inserts %.0f → %.0f",
		committed, committedLater, ends, written, writtenLater, insertErrors, insertErrorsLater)
	if committedLater != committed || writtenLater != written {
		t.Errorf("while ClickHouse was down ingest committed %d more offsets and wrote %.0f more events, want none", committedLater-committed, writtenLater-written)
	}
	if !(insertErrorsLater > insertErrors) {
		t.Errorf("failed inserts %.0f then %.0f: want the retries of the outage counted", insertErrors, insertErrorsLater)
	}
	if committedLater >= ends {
		t.Errorf("%d of %d messages committed during the outage: want messages in flight", committedLater, ends)
	}
	w.ch.Start(t)
	w.checkExact(t, gen)
	w.waitFor(t, "every message committed after the outage", 2*time.Minute, func() bool {
		c, err := w.committed()
		return err == nil && c == ends
	})
}

// TestRidesOutKafkaRestart restarts the broker mid-run, while messages
// ingest has not committed yet wait in the topics (work in flight); the
// same ingest process, never restarted, counts the failed fetches or
// commits it retried, then writes exactly the unique valid events and
// commits every offset.
func TestRidesOutKafkaRestart(t *testing.T) {
	w := newWorld(t)
	w.startIngest(t)
	gen := generator(t, 0.01)
	pid := w.ingest.Pid()
	restarted := false
	var committed, ends int64
	w.produce(t, gen, 60_000, func(sent int64) {
		if !restarted && sent >= 30_000 {
			restarted = true
			var err1, err2 error
			committed, err1 = w.committed()
			ends, err2 = w.ends()
			if err := errors.Join(err1, err2); err != nil {
				t.Fatal(err)
			}
			w.kafka.Stop(t)
			time.Sleep(3 * time.Second)
			w.kafka.Start(t)
			t.Log("Kafka restarted")
		}
	})
	t.Logf("before the restart: %d of %d messages committed", committed, ends)
	if committed >= ends {
		t.Errorf("%d of %d messages committed when the broker stopped: want messages in flight", committed, ends)
	}
	if w.ingest.Exited() || w.ingest.Pid() != pid {
		t.Fatalf("ingest exited:\n%s", w.ingest.Output())
	}
	w.checkExact(t, gen)
	all, err := w.ends()
	if err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "every message committed after the restart", 2*time.Minute, func() bool {
		c, err := w.committed()
		return err == nil && c == all
	})
	fetchErrs, err1 := w.metric("driftwatch_ingest_fetch_errors_total")
	commitErrs, err2 := w.metric("driftwatch_ingest_commit_errors_total")
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	t.Logf("ingest counted %.0f failed fetches and %.0f failed commits (each retried) across the restart", fetchErrs, commitErrs)
	if !(fetchErrs+commitErrs > 0) {
		t.Errorf("no failed fetch or commit counted: the restart did not reach ingest")
	}
	w.ingest.Signal(syscall.SIGTERM)
	if err := w.ingest.Wait(t, 60*time.Second); err != nil {
		t.Errorf("ingest exit after SIGTERM: %v\n%s", err, w.ingest.Output())
	}
}
