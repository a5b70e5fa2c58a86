package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/kafkaio"
)

// TestTopicRecreated: a topic deleted and created again restarts its
// offsets at 0, so a new batch covers the same offset ranges as one stored
// before. Its events are new and must be stored: the deduplication token
// digests the batch's event ids, not only its offsets.
func TestTopicRecreated(t *testing.T) {
	s := newStack(t)
	topic := s.kopts.Topic("inferences")
	now := time.Now().UTC()
	batchOf := func(from int) []kafka.Message {
		var msgs []kafka.Message
		for i := from; i < from+10; i++ {
			msgs = append(msgs, kafka.Message{Key: []byte("m0"), Value: []byte(inferenceJSON(i, now.Add(-time.Duration(i)*time.Second)))})
		}
		return msgs
	}
	run := func(group string) {
		t.Helper()
		ing, err := New(Options{Kafka: s.kopts, Settings: Settings{ConsumerGroup: group, BatchRows: 10, BatchAge: time.Minute, RetryMax: time.Second}, Conn: s.conn, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ing.Run(ctx) }()
		deadline := time.Now().Add(time.Minute)
		for writtenOf(ing, topic) < 10 {
			if time.Now().After(deadline) {
				t.Fatalf("group %s: ingest wrote %v of 10 events in a minute", group, writtenOf(ing, topic))
			}
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		ing.Close()
	}

	s.produce(t, "inferences", batchOf(0)...)
	run("first")
	if c := s.count(t, "SELECT count() FROM inferences"); c != 10 {
		t.Fatalf("first batch: %d rows stored, want 10", c)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(s.brokers...)}
	res, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Errors[topic]; err != nil {
		t.Fatalf("delete %s: %v", topic, err)
	}
	for i := 0; ; i++ { // deletion is asynchronous: retry creation until the name is free
		err := kafkaio.EnsureTopics(ctx, kafkaio.Options{Brokers: s.brokers}, []kafkaio.TopicSpec{{Name: topic, Partitions: 3}})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("create %s again: %v", topic, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The same partition (same key) and offsets 0..9, new events.
	s.produce(t, "inferences", batchOf(100)...)
	run("second")

	if c := s.count(t, "SELECT count() FROM inferences"); c != 20 {
		t.Errorf("after the topic was created again: %d rows stored, want 20 (the second batch was dropped as a duplicate of the first)", c)
	}
	// Both batches covered the same partition and offsets: that is the case.
	if c := s.count(t, "SELECT uniqExact(kafka_partition, kafka_offset) FROM inferences"); c != 10 {
		t.Errorf("the stored rows cover %d distinct offsets, want 10: the test did not repeat the offsets", c)
	}
}

func writtenOf(ing *Ingester, topic string) float64 {
	return testutil.ToFloat64(ing.m.written.WithLabelValues(topic))
}
