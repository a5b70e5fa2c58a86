package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/loadgen"
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
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{kafka: teststack.StartKafka(t), ch: teststack.StartClickHouse(t), bin: teststack.Build(t, "./services/ingest")}
	w.http = "127.0.0.1:" + strconv.Itoa(teststack.FreePort(t))
	w.kopts = kafkaio.Options{Brokers: w.kafka.Brokers()}
	w.env = []string{
		"DRIFTWATCH_KAFKA_BROKERS=" + w.kafka.Brokers()[0],
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
	cfg.Seed = uint64(time.Now().UnixNano())
	t.Logf("generator seed %d", cfg.Seed)
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
// duplicates while the ingest process is killed with SIGKILL three times
// and restarted; afterwards ClickHouse holds exactly the unique valid
// events.
func TestExactlyOnceAcrossSIGKILL(t *testing.T) {
	w := newWorld(t)
	w.startIngest(t)
	gen := generator(t, 0.05)
	const ticks = 200_000
	var (
		mu     sync.Mutex
		kills  int
		killAt = []uint64{30_000, 80_000, 130_000}
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for kills < len(killAt) {
			if n := w.count(t, "SELECT count() FROM inferences"); n >= killAt[kills] {
				mu.Lock()
				w.ingest.Kill() // SIGKILL: no flush, no commit
				kills++
				t.Logf("SIGKILL %d at %d rows", kills, n)
				w.startIngest(t)
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	w.produce(t, gen, ticks, nil)
	select {
	case <-done:
	case <-time.After(10 * time.Minute): // a bound, not a timing: a kill costs a 30 s session timeout per group
		t.Fatalf("only %d of 3 kills happened", kills)
	}
	w.checkExact(t, gen)
}

// TestRidesOutClickHouseOutage stops ClickHouse for 20 s while events keep
// arriving; ingest must pause, keep its memory, and finish by itself.
func TestRidesOutClickHouseOutage(t *testing.T) {
	w := newWorld(t)
	w.startIngest(t)
	gen := generator(t, 0.01)
	stopped := false
	w.produce(t, gen, 60_000, func(sent int64) {
		if !stopped && sent >= 20_000 {
			stopped = true
			w.ch.Stop(t)
			t.Log("ClickHouse stopped for 20 s")
		}
	})
	time.Sleep(20 * time.Second)
	if w.ingest.Exited() {
		t.Fatalf("ingest exited during the outage:\n%s", w.ingest.Output())
	}
	w.ch.Start(t)
	w.checkExact(t, gen)
}

// TestRidesOutKafkaRestart restarts the broker mid-run.
func TestRidesOutKafkaRestart(t *testing.T) {
	w := newWorld(t)
	w.startIngest(t)
	gen := generator(t, 0.01)
	restarted := false
	w.produce(t, gen, 60_000, func(sent int64) {
		if !restarted && sent >= 30_000 {
			restarted = true
			w.kafka.Stop(t)
			time.Sleep(3 * time.Second)
			w.kafka.Start(t)
			t.Log("Kafka restarted")
		}
	})
	if w.ingest.Exited() {
		t.Fatalf("ingest exited:\n%s", w.ingest.Output())
	}
	w.checkExact(t, gen)
	w.ingest.Signal(syscall.SIGTERM)
	if err := w.ingest.Wait(t, 60*time.Second); err != nil {
		t.Errorf("ingest exit after SIGTERM: %v\n%s", err, w.ingest.Output())
	}
}
