package kafkaio

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/schemas"
)

func TestParseBrokers(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr []string // substrings every one of which the error must contain
	}{
		{name: "one", in: "127.0.0.1:9092", want: []string{"127.0.0.1:9092"}},
		{name: "several with spaces", in: " kafka-1:9092, kafka-2.internal:19092 ,10.0.0.3:9092", want: []string{"kafka-1:9092", "kafka-2.internal:19092", "10.0.0.3:9092"}},
		{name: "ipv6 in brackets", in: "[::1]:9092", want: []string{"[::1]:9092"}},
		{name: "empty", in: "", wantErr: []string{"empty"}},
		{name: "blank", in: "  ", wantErr: []string{"empty"}},
		{name: "no port", in: "localhost", wantErr: []string{`broker 1 "localhost"`, "host:port"}},
		{name: "port not a number", in: "a:9092,b:http", wantErr: []string{`broker 2 "b:http"`, `port "http"`}},
		{name: "port out of range", in: "a:65536", wantErr: []string{`broker 1 "a:65536"`, "1 to 65535"}},
		{name: "port zero", in: "a:0", wantErr: []string{`broker 1 "a:0"`}},
		{name: "missing host", in: ":9092", wantErr: []string{`broker 1 ":9092"`, "missing host"}},
		{name: "scheme", in: "kafka://a:9092", wantErr: []string{`broker 1 "kafka://a:9092"`, "without a scheme"}},
		{name: "empty entry between commas", in: "a:9092,,b:9092", wantErr: []string{`broker 2 ""`, "empty entry"}},
		{name: "trailing comma", in: "a:9092,", wantErr: []string{`broker 2 ""`}},
		{name: "bare ipv6", in: "::1:9092", wantErr: []string{`broker 1 "::1:9092"`}},
		{name: "duplicate", in: "a:9092, a:9092", wantErr: []string{`broker 2 " a:9092"`, "repeats broker 1"}},
		{name: "every bad entry is named", in: "x,a:1,y:z", wantErr: []string{`broker 1 "x"`, `broker 3 "y:z"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBrokers(tt.in)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ParseBrokers(%q) error: %v", tt.in, err)
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("ParseBrokers(%q) = %q, want %q", tt.in, got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseBrokers(%q) = %q, want an error", tt.in, got)
			}
			if !errors.Is(err, ErrInvalidBroker) {
				t.Errorf("error %q does not wrap ErrInvalidBroker", err)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestTopic(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		in   string
		want string
	}{
		{name: "default prefix", opts: Options{}, in: "inferences", want: "driftwatch.inferences"},
		{name: "custom prefix", opts: Options{TopicPrefix: "staging.dw."}, in: "dead-letters", want: "staging.dw.dead-letters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.opts.Topic(tt.in); got != tt.want {
				t.Errorf("Options.Topic(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := Topic(tt.opts.Prefix(), tt.in); got != tt.want {
				t.Errorf("Topic(%q, %q) = %q, want %q", tt.opts.Prefix(), tt.in, got, tt.want)
			}
		})
	}
}

func TestValidateTopicName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{name: "contract topic", in: "driftwatch.retrain-triggers", ok: true},
		{name: "underscore and digits", in: "a_b.9", ok: true},
		{name: "249 characters", in: strings.Repeat("a", 249), ok: true},
		{name: "250 characters", in: strings.Repeat("a", 250)},
		{name: "empty", in: ""},
		{name: "dot", in: "."},
		{name: "dot dot", in: ".."},
		{name: "slash", in: "a/b"},
		{name: "space", in: "a b"},
		{name: "non-ASCII", in: "modèle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateTopicName(tt.in)
			if tt.ok && err != nil {
				t.Fatalf("ValidateTopicName(%q) = %v, want nil", tt.in, err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidTopic) {
				t.Fatalf("ValidateTopicName(%q) = %v, want ErrInvalidTopic", tt.in, err)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr []string
	}{
		{name: "ok", opts: Options{Brokers: []string{"127.0.0.1:9092"}}},
		{name: "no brokers", opts: Options{}, wantErr: []string{"brokers: ", "no broker"}},
		{name: "every problem at once", opts: Options{Brokers: []string{"a:1", "b"}, TopicPrefix: "bad prefix/"}, wantErr: []string{"brokers[1]", "topic prefix"}},
		{name: "negative replication", opts: Options{Brokers: []string{"a:1"}, ReplicationFactor: -1}, wantErr: []string{"replication factor -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// TestSpecsReplication: the topology's partitions, retention and size
// limit, and the options' replication, reach every spec; replication 0
// stays 0 (the brokers' default) and sets no min.insync.replicas.
func TestSpecsReplication(t *testing.T) {
	inf, dl := schemas.TopicFor(schemas.TopicInferences), schemas.TopicFor(schemas.TopicDeadLetters)
	tests := []struct {
		name          string
		rf, minISR    int
		wantRF        int
		wantMinISR    string
		wantMinISRSet bool
	}{
		{name: "brokers' default", wantRF: 0},
		{name: "three replicas, two in sync", rf: 3, minISR: 2, wantRF: 3, wantMinISR: "2", wantMinISRSet: true},
		{name: "replicas only", rf: 3, wantRF: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Brokers: []string{"a:1"}, TopicPrefix: "p.", ReplicationFactor: tt.rf, MinInsyncReplicas: tt.minISR}
			specs := Specs(o, inf, dl)
			if len(specs) != 2 {
				t.Fatalf("%d specs, want 2", len(specs))
			}
			for i, top := range []schemas.Topic{inf, dl} {
				s := specs[i]
				if s.Name != "p."+top.Name || s.Partitions != top.Partitions || s.ReplicationFactor != tt.wantRF {
					t.Errorf("spec %d = %s, %d partitions, replication %d; want p.%s, %d, %d", i, s.Name, s.Partitions, s.ReplicationFactor, top.Name, top.Partitions, tt.wantRF)
				}
				if s.Configs["max.message.bytes"] != strconv.Itoa(top.MaxMessageBytes) {
					t.Errorf("%s max.message.bytes %q, want %d", s.Name, s.Configs["max.message.bytes"], top.MaxMessageBytes)
				}
				got, set := s.Configs["min.insync.replicas"]
				if set != tt.wantMinISRSet || got != tt.wantMinISR {
					t.Errorf("%s min.insync.replicas %q (set %v), want %q (set %v)", s.Name, got, set, tt.wantMinISR, tt.wantMinISRSet)
				}
			}
		})
	}
}

func TestNewWriterSettings(t *testing.T) {
	w, err := NewWriter(Options{Brokers: []string{"127.0.0.1:9092"}}, "inferences")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Topic != "driftwatch.inferences" {
		t.Errorf("Topic = %q, want driftwatch.inferences", w.Topic)
	}
	if w.RequiredAcks != kafka.RequireAll {
		t.Errorf("RequiredAcks = %v, want RequireAll", w.RequiredAcks)
	}
	if _, ok := w.Balancer.(*kafka.Hash); !ok {
		t.Errorf("Balancer = %T, want *kafka.Hash", w.Balancer)
	}
	if w.AllowAutoTopicCreation {
		t.Error("AllowAutoTopicCreation = true, want false: topics are created with EnsureTopics")
	}

	if _, err := NewWriter(Options{}, "inferences"); !errors.Is(err, ErrInvalidBroker) {
		t.Errorf("NewWriter without brokers: err = %v, want ErrInvalidBroker", err)
	}
	if _, err := NewWriter(Options{Brokers: []string{"a:1"}}, "no/slash"); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("NewWriter with a bad topic: err = %v, want ErrInvalidTopic", err)
	}
}

func TestNewReaderSettings(t *testing.T) {
	r, err := NewReader(Options{Brokers: []string{"127.0.0.1:9092"}, TopicPrefix: "x."}, "outcomes", "ingest")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cfg := r.Config()
	if cfg.Topic != "x.outcomes" || cfg.GroupID != "ingest" {
		t.Errorf("Topic, GroupID = %q, %q; want x.outcomes, ingest", cfg.Topic, cfg.GroupID)
	}
	if cfg.CommitInterval != 0 {
		t.Errorf("CommitInterval = %v, want 0 (explicit commits)", cfg.CommitInterval)
	}
	if cfg.StartOffset != kafka.FirstOffset {
		t.Errorf("StartOffset = %d, want FirstOffset", cfg.StartOffset)
	}
	if _, err := NewReader(Options{Brokers: []string{"a:1"}}, "outcomes", ""); err == nil {
		t.Error("NewReader without a group: err = nil, want an error")
	}
}
