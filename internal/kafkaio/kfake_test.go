package kafkaio

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// newFakeCluster starts an in-process Kafka-protocol broker. It is no stand-in
// for the real broker in integration_test.go; it keeps the package's own
// logic tested where no broker runs.
func newFakeCluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func TestCommitResumeFake(t *testing.T) {
	testCommitResume(t, newFakeCluster(t))
}

func TestEnsureTopicsFake(t *testing.T) {
	brokers := newFakeCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	specs := []TopicSpec{
		{Name: Topic(DefaultTopicPrefix, "inferences")},
		{Name: Topic(DefaultTopicPrefix, "dead-letters"), Partitions: 1, Configs: map[string]string{"retention.ms": "86400000"}},
	}
	for i := range 2 {
		if err := EnsureTopics(ctx, Options{Brokers: brokers}, specs); err != nil {
			t.Fatalf("EnsureTopics, call %d: %v", i+1, err)
		}
	}
	if err := EnsureTopics(ctx, Options{Brokers: brokers}, []TopicSpec{{Name: "bad name"}}); err == nil {
		t.Error("EnsureTopics with an illegal name: err = nil, want an error")
	}
}

func TestPing(t *testing.T) {
	brokers := newFakeCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := Ping(ctx, Options{Brokers: brokers}); err != nil {
		t.Fatalf("Ping(%v) = %v, want nil", brokers, err)
	}

	// A port nobody listens on: take one, then free it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	if err := Ping(ctx, Options{Brokers: []string{dead}}); err == nil {
		t.Errorf("Ping(%s) with nothing listening = nil, want an error", dead)
	}
	// The first broker is down, the second answers.
	if err := Ping(ctx, Options{Brokers: []string{dead, brokers[0]}}); err != nil {
		t.Errorf("Ping with one live broker = %v, want nil", err)
	}
}
