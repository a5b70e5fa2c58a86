package ingest_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/teststack"
)

// TestNoLossWhenABrokerIsKilled runs ingest against a private three-node
// Kafka cluster and kills, with SIGKILL, the node leading a partition of
// the inferences topic while events are produced (acks=all, through
// kafkaio.NewWriter) and ingest has read messages it has not committed.
// The topics ingest created have three replicas, all in sync, and
// min.insync.replicas 2 (the settings topic_replication_factor and
// topic_min_insync_replicas); the two nodes left elect new leaders, the
// producer and ingest carry on, and ClickHouse ends with exactly the
// unique valid events sent, every offset committed.
func TestNoLossWhenABrokerIsKilled(t *testing.T) {
	cluster := teststack.StartKafkaCluster(t)
	w := newWorldOn(t, cluster.Brokers())
	w.env = append(w.env, "DRIFTWATCH_TOPIC_REPLICATION_FACTOR=3", "DRIFTWATCH_TOPIC_MIN_INSYNC_REPLICAS=2")
	w.startIngest(t)

	ctx := context.Background()
	client := &kafka.Client{Addr: kafka.TCP(cluster.Brokers()...), Timeout: 10 * time.Second}
	for _, topic := range append(slices.Clone(eventTopics), "dead-letters") {
		name := w.kopts.Topic(topic)
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{name}})
		if err != nil {
			t.Fatalf("metadata of %s: %v", name, err)
		}
		if len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) == 0 {
			t.Fatalf("metadata of %s: %+v", name, md.Topics)
		}
		for _, p := range md.Topics[0].Partitions {
			if len(p.Replicas) != 3 || len(p.Isr) != 3 {
				t.Errorf("%s/%d has %d replicas, %d in sync; want 3 and 3", name, p.ID, len(p.Replicas), len(p.Isr))
			}
		}
		cfg, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: name, ConfigNames: []string{"min.insync.replicas"}}}})
		if err != nil {
			t.Fatalf("configs of %s: %v", name, err)
		}
		got := ""
		for _, r := range cfg.Resources {
			for _, e := range r.ConfigEntries {
				if e.ConfigName == "min.insync.replicas" {
					got = e.ConfigValue
				}
			}
		}
		if got != "2" {
			t.Errorf("%s has min.insync.replicas %q, want 2", name, got)
		}
	}

	gen := generator(t, 0.05)
	killed := 0
	var committed, ends int64
	var led []int
	w.produce(t, gen, 40_000, func(sent int64) {
		if killed != 0 || sent < 15_000 {
			return
		}
		name := w.kopts.Topic("inferences")
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{name}})
		if err != nil || len(md.Topics) != 1 {
			t.Fatalf("metadata of %s before the kill: %v", name, err)
		}
		victim := cluster.NodeID(md.Topics[0].Partitions[0].Leader.Port)
		if victim == 0 {
			t.Fatalf("the leader of %s/0, %+v, is none of the cluster's nodes", name, md.Topics[0].Partitions[0].Leader)
		}
		for _, p := range md.Topics[0].Partitions {
			if cluster.NodeID(p.Leader.Port) == victim {
				led = append(led, p.ID)
			}
		}
		var err1, err2 error
		committed, err1 = w.committed()
		ends, err2 = w.ends()
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		cluster.Kill(t, victim)
		killed = victim
		// The helpers below ask the nodes still alive.
		var live []string
		for i, b := range cluster.Brokers() {
			if i+1 != victim {
				live = append(live, b)
			}
		}
		w.kopts.Brokers = live
		t.Logf("SIGKILL to node %d, leader of %s partitions %v, at %d inferences sent; %d of %d messages committed", victim, name, led, sent, committed, ends)
	})
	if killed == 0 {
		t.Fatal("no broker was killed")
	}
	if committed >= ends {
		t.Errorf("%d of %d messages committed when the broker died: want messages in flight", committed, ends)
	}
	w.checkExact(t, gen)
	all, err := w.ends()
	if err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "every message committed after the kill", 2*time.Minute, func() bool {
		c, err := w.committed()
		return err == nil && c == all
	})
	if w.ingest.Exited() {
		t.Fatalf("ingest exited:\n%s", w.ingest.Output())
	}

	// The partitions the dead node led are led by the two left, which
	// are the only replicas in sync.
	live := &kafka.Client{Addr: kafka.TCP(w.kopts.Brokers...), Timeout: 10 * time.Second}
	name := w.kopts.Topic("inferences")
	md, err := live.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{name}})
	if err != nil || len(md.Topics) != 1 {
		t.Fatalf("metadata of %s after the kill: %v", name, err)
	}
	for _, p := range md.Topics[0].Partitions {
		leader := cluster.NodeID(p.Leader.Port)
		if leader == killed || leader == 0 {
			t.Errorf("%s/%d is led by node %d after node %d was killed", name, p.ID, leader, killed)
		}
		var isr []string
		for _, b := range p.Isr {
			isr = append(isr, strconv.Itoa(cluster.NodeID(b.Port)))
		}
		if len(p.Isr) != 2 || slices.Contains(isr, strconv.Itoa(killed)) {
			t.Errorf("%s/%d has in-sync replicas %v after node %d was killed, want the other two", name, p.ID, isr, killed)
		}
	}
	t.Logf("%d messages in the event topics, all committed; node %d dead, %s led by the other two", all, killed, name)
}
