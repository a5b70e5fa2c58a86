package schemas

import "testing"

func TestTopology(t *testing.T) {
	seen := map[string]bool{}
	for _, tp := range Topology() {
		if seen[tp.Name] {
			t.Errorf("topic %s listed twice", tp.Name)
		}
		seen[tp.Name] = true
		if tp.Partitions < 1 || !(tp.Retention > 0) || tp.MaxMessageBytes < KafkaDefaultMaxMessageBytes {
			t.Errorf("topic %s: partitions %d, retention %s, max message bytes %d", tp.Name, tp.Partitions, tp.Retention, tp.MaxMessageBytes)
		}
		if tp.Kind != KindUnknown && tp.Kind.Topic() != tp.Name {
			t.Errorf("topic %s: its kind %s names topic %q", tp.Name, tp.Kind, tp.Kind.Topic())
		}
	}
	for _, k := range Kinds() {
		if !seen[k.Topic()] {
			t.Errorf("kind %s: topic %q is not in the topology", k, k.Topic())
		}
	}
	if dl := TopicFor(TopicDeadLetters); dl.MaxMessageBytes != DeadLetterMaxBytes {
		t.Errorf("dead-letters max.message.bytes %d, want %d", dl.MaxMessageBytes, DeadLetterMaxBytes)
	}
	// An event at the decoder's default limit fits its topic.
	if !(DefaultMaxBytes <= KafkaDefaultMaxMessageBytes) {
		t.Errorf("DefaultMaxBytes %d exceeds the event topics' limit %d", DefaultMaxBytes, KafkaDefaultMaxMessageBytes)
	}
	defer func() {
		if recover() == nil {
			t.Error("TopicFor of an unknown name did not panic")
		}
	}()
	TopicFor("nope")
}
