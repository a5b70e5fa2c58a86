package ingest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// TestBatchBytes: 40 inferences of about 300 KB with batch_bytes 1 MiB
// (and batch_rows far above 40) are inserted four at most per batch, as
// the bound in bytes says, and every one is stored.
func TestBatchBytes(t *testing.T) {
	s := newStack(t)
	now := time.Now().UTC()
	const n, pad = 40, 300 << 10
	blob := strings.Repeat("x", pad)
	var msgs []kafka.Message
	for i := range n {
		v := strings.Replace(inferenceJSON(i, now.Add(-time.Duration(i)*time.Second)), `"features":{`, `"features":{"blob":"`+blob+`",`, 1)
		msgs = append(msgs, kafka.Message{Key: []byte("m0"), Value: []byte(v)})
	}
	s.produce(t, "inferences", msgs...)

	reg := prometheus.NewRegistry()
	ing, err := New(Options{Kafka: s.kopts, Settings: Settings{ConsumerGroup: "g", BatchRows: 1000, BatchBytes: 1 << 20, QueueBytes: 1 << 20, BatchAge: 2 * time.Second},
		Conn: s.conn, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		ing.Close()
	}()
	s.waitCount(t, "SELECT count() FROM inferences", n, time.Minute)
	if c := s.count(t, "SELECT count() FROM inferences WHERE length(features_categorical['blob']) = "+strconv.Itoa(pad)); c != n {
		t.Errorf("rows with the whole blob = %d, want %d", c, n)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var batches, rows, upTo4 uint64
	for _, mf := range mfs {
		if mf.GetName() != "driftwatch_ingest_batch_rows" {
			continue
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			batches += h.GetSampleCount()
			rows += uint64(h.GetSampleSum())
			for _, b := range h.GetBucket() {
				if b.GetUpperBound() == 4 {
					upTo4 += b.GetCumulativeCount()
				}
			}
		}
	}
	if rows != n || batches < n/4 || upTo4 != batches {
		t.Errorf("%d batches of %d rows in all, %d of them of at most 4 rows; want %d rows in batches of at most 4 (1 MiB of 300 KB events)", batches, rows, upTo4, n)
	}
	t.Logf("%d rows of %d KB in %d batches (batch_bytes 1 MiB)", rows, pad>>10, batches)
}
