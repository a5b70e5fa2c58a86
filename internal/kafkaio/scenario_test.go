package kafkaio

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// uniqueName returns a topic or group name no earlier run has used, so tests
// against a long-lived broker never see each other's messages or offsets.
func uniqueName(kind string) string {
	return fmt.Sprintf("test-%s-%d-%08x", kind, time.Now().UnixNano(), rand.Uint32())
}

type partOffset struct {
	partition int
	offset    int64
}

// testCommitResume is the at-least-once contract ingest relies on, run
// against whatever broker brokers points at: a consumer-group member that
// committed some messages and fetched more is replaced by a new member of the
// same group, which must start right after the committed offsets (committed
// messages are not delivered again), redeliver the fetched but uncommitted
// ones, and lose nothing.
func testCommitResume(t *testing.T, brokers []string) {
	const (
		total     = 60 // messages produced
		fetched   = 24 // read by the first member
		committed = 15 // of those, committed by the first member
		keys      = 7
	)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	opts := Options{Brokers: brokers, TopicPrefix: "driftwatch.test.", ClientID: "kafkaio-test"}
	name := uniqueName("commit-resume")
	topic := opts.Topic(name)
	group := uniqueName("group")

	if err := Ping(ctx, Options{Brokers: brokers}); err != nil {
		t.Fatalf("ping: %v", err)
	}
	spec := []TopicSpec{{Name: topic, Partitions: 3}}
	if err := EnsureTopics(ctx, Options{Brokers: brokers}, spec); err != nil {
		t.Fatalf("ensure topic: %v", err)
	}
	if err := EnsureTopics(ctx, Options{Brokers: brokers}, spec); err != nil {
		t.Fatalf("ensure an existing topic again: %v", err)
	}

	w, err := NewWriter(opts, name)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]kafka.Message, total)
	for i := range msgs {
		msgs[i] = kafka.Message{
			Key:     []byte(fmt.Sprintf("model-%d", i%keys)),
			Value:   []byte(strconv.Itoa(i)),
			Headers: []kafka.Header{{Key: "schema", Value: []byte("driftwatch.test.v1")}},
		}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("write %d messages to %s: %v", total, topic, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close writer: %v", err)
	}

	// First member: fetch some, commit fewer, leave.
	r1, err := NewReader(opts, name, group)
	if err != nil {
		t.Fatal(err)
	}
	first := fetchN(ctx, t, r1, fetched)
	if err := r1.CommitMessages(ctx, first[:committed]...); err != nil {
		t.Fatalf("commit %d messages: %v", committed, err)
	}
	if err := r1.Close(); err != nil {
		t.Fatalf("close first reader: %v", err)
	}

	// Within a partition messages arrive in offset order from offset 0 (a new
	// group starts at the first offset), so the committed offset of each
	// partition is one past the last committed message in it.
	next := map[int]int64{}
	seen := map[int]bool{} // values delivered and committed, then by the second member
	for i, m := range first {
		if i < committed {
			next[m.Partition] = m.Offset + 1
			seen[mustAtoi(t, m.Value)] = true
		}
	}
	var uncommitted []partOffset
	for _, m := range first[committed:] {
		uncommitted = append(uncommitted, partOffset{m.Partition, m.Offset})
	}

	// Second member of the same group: exactly the rest.
	r2, err := NewReader(opts, name, group)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	second := fetchN(ctx, t, r2, total-committed)
	got := map[partOffset]bool{}
	keyPartition := map[string]int{}
	perPartition := map[int]int64{}
	for _, m := range append(first[:committed:committed], second...) {
		if p, ok := keyPartition[string(m.Key)]; ok && p != m.Partition {
			t.Errorf("key %s went to partitions %d and %d; the hash balancer keeps a key on one partition", m.Key, p, m.Partition)
		}
		keyPartition[string(m.Key)] = m.Partition
		perPartition[m.Partition] = max(perPartition[m.Partition], m.Offset+1)
	}
	for _, m := range second {
		po := partOffset{m.Partition, m.Offset}
		if m.Offset < next[m.Partition] {
			t.Errorf("partition %d offset %d (value %s) was committed by the first member but delivered again", m.Partition, m.Offset, m.Value)
		}
		if got[po] {
			t.Errorf("partition %d offset %d delivered twice to the second member", m.Partition, m.Offset)
		}
		got[po] = true
		v := mustAtoi(t, m.Value)
		if seen[v] {
			t.Errorf("value %d delivered again after it was committed", v)
		}
		seen[v] = true
	}
	for _, po := range uncommitted {
		if !got[po] {
			t.Errorf("partition %d offset %d was fetched but not committed by the first member, and the second member did not get it", po.partition, po.offset)
		}
	}
	for i := range total {
		if !seen[i] {
			t.Errorf("message %d was lost", i)
		}
	}
	if len(perPartition) < 2 {
		t.Errorf("%d keys landed on %d partition(s) of 3; want them spread", keys, len(perPartition))
	}

	// Commit the rest; the group's committed offsets are then the ends of the
	// partitions.
	if err := r2.CommitMessages(ctx, second...); err != nil {
		t.Fatalf("commit the rest: %v", err)
	}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport(opts)}
	parts := make([]int, 0, len(perPartition))
	for p := range perPartition {
		parts = append(parts, p)
	}
	res, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		t.Fatalf("fetch committed offsets: %v", err)
	}
	if res.Error != nil {
		t.Fatalf("fetch committed offsets: %v", res.Error)
	}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			t.Errorf("committed offset of partition %d: %v", p.Partition, p.Error)
		}
		if want := perPartition[p.Partition]; p.CommittedOffset != want {
			t.Errorf("partition %d: committed offset %d, want %d (its end)", p.Partition, p.CommittedOffset, want)
		}
	}
}

func fetchN(ctx context.Context, t *testing.T, r *kafka.Reader, n int) []kafka.Message {
	t.Helper()
	out := make([]kafka.Message, 0, n)
	for len(out) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("fetch message %d of %d from %s: %v", len(out)+1, n, r.Config().Topic, err)
		}
		out = append(out, m)
	}
	return out
}

func mustAtoi(t *testing.T, b []byte) int {
	t.Helper()
	n, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatalf("message value %q is not a number", b)
	}
	return n
}
