package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// TestIngestShadowRows: a champion's inference and a shadow inference for
// the same request (same prediction_id, own event_id and model_version,
// "shadow": true) are two rows of inferences, neither collapsed into the
// other by the event_id dedup, with the marker stored; one outcome for the
// prediction_id labels both in inferences_labeled.
func TestIngestShadowRows(t *testing.T) {
	s := newStack(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	const n = 50
	var msgs []kafka.Message
	var outs []kafka.Message
	for i := range n {
		ts := now.Add(-time.Duration(i) * time.Second).UnixMilli()
		champ := fmt.Sprintf(`{"event_id":"c-%d","model_id":"m","model_version":"v1","prediction_id":"p-%d","timestamp":%d,"features":{"x":%d},"prediction":{"score":0.2,"label":"0"}}`, i, i, ts, i)
		shadow := fmt.Sprintf(`{"event_id":"s-%d","model_id":"m","model_version":"v2","prediction_id":"p-%d","timestamp":%d,"features":{"x":%d},"prediction":{"score":0.9,"label":"1"},"shadow":true}`, i, i, ts, i)
		msgs = append(msgs, kafka.Message{Key: []byte("m"), Value: []byte(champ)}, kafka.Message{Key: []byte("m"), Value: []byte(shadow)})
		outs = append(outs, kafka.Message{Key: []byte("m"), Value: []byte(fmt.Sprintf(`{"event_id":"o-%d","model_id":"m","prediction_id":"p-%d","timestamp":%d,"actual":{"label":"1"}}`, i, i, ts+1000))})
	}
	// One explicit "shadow": false and one null are champion rows too.
	msgs = append(msgs,
		kafka.Message{Key: []byte("m"), Value: []byte(fmt.Sprintf(`{"event_id":"f-1","model_id":"m","model_version":"v1","prediction_id":"q-1","timestamp":%d,"features":{"x":1},"prediction":{"score":0.2},"shadow":false}`, now.UnixMilli()))},
		kafka.Message{Key: []byte("m"), Value: []byte(fmt.Sprintf(`{"event_id":"f-2","model_id":"m","model_version":"v1","prediction_id":"q-2","timestamp":%d,"features":{"x":1},"prediction":{"score":0.2},"shadow":null}`, now.UnixMilli()))})
	s.produce(t, "inferences", msgs...)
	s.produce(t, "outcomes", outs...)

	ing, err := New(Options{Kafka: s.kopts, Settings: Settings{ConsumerGroup: "g", BatchRows: 1000, BatchAge: 200 * time.Millisecond}, Conn: s.conn, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	deadline := time.Now().Add(90 * time.Second)
	for s.count(t, "SELECT count() FROM inferences FINAL") < 2*n+2 || s.count(t, "SELECT count() FROM outcomes FINAL") < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %d inferences, %d outcomes", s.count(t, "SELECT count() FROM inferences FINAL"), s.count(t, "SELECT count() FROM outcomes FINAL"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	ing.Close()

	for _, c := range []struct {
		query string
		want  uint64
	}{
		{"SELECT count() FROM inferences FINAL WHERE shadow AND model_version = 'v2' AND startsWith(event_id, 's-')", n},
		{"SELECT count() FROM inferences FINAL WHERE NOT shadow AND model_version = 'v1'", n + 2},
		{"SELECT uniqExact(prediction_id) FROM inferences FINAL WHERE startsWith(prediction_id, 'p-')", n},
		{"SELECT count() FROM inferences_labeled WHERE shadow AND actual_label = '1' AND model_version = 'v2'", n},
		{"SELECT count() FROM inferences_labeled WHERE NOT shadow AND actual_label = '1' AND model_version = 'v1'", n},
	} {
		if got := s.count(t, c.query); got != c.want {
			t.Errorf("%s = %d, want %d", c.query, got, c.want)
		}
	}
}
