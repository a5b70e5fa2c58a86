package kafkaio

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/teststack"
)

// TestSASLSSL runs every client kafkaio builds (admin client, writer,
// consumer-group reader, Ping) through a real broker's SASL_SSL listener,
// with certificates openssl made at start, for each mechanism; and checks
// that a wrong password and an untrusted certificate are refused at once
// with an error that says so, wrapping ErrRefused.
func TestSASLSSL(t *testing.T) {
	k := teststack.StartKafkaSASLSSL(t)
	secure := func(mech string) config.Kafka {
		return config.Kafka{
			KafkaBrokers: k.SASLSSLBrokers(), TopicPrefix: "driftwatch.sasl-test.",
			KafkaSASLMechanism: mech, KafkaSASLUsername: k.SASLUsername, KafkaSASLPassword: config.Secret(k.SASLPassword),
			KafkaTLS: true, KafkaTLSCAFile: k.TLSFile("ca.pem"),
		}
	}

	for _, tc := range []struct {
		name string
		cfg  func() config.Kafka
	}{
		{"PLAIN", func() config.Kafka { return secure(config.SASLPlain) }},
		{"SCRAM-SHA-256", func() config.Kafka { return secure(config.SASLScramSHA256) }},
		{"SCRAM-SHA-512 with a client certificate", func() config.Kafka {
			c := secure(config.SASLScramSHA512)
			c.KafkaTLSCertFile, c.KafkaTLSKeyFile = k.TLSFile("client.pem"), k.TLSFile("client.key")
			return c
		}},
		{"scram-sha-512 lower case, server name localhost", func() config.Kafka {
			c := secure("scram-sha-512")
			c.KafkaTLSServerName = "localhost"
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg()
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			opts, err := FromConfig(cfg, "kafkaio-sasl-test", nil)
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, opts)
		})
	}

	refusals := []struct {
		name string
		cfg  func() config.Kafka
		want string
	}{
		{"wrong PLAIN password", func() config.Kafka {
			c := secure(config.SASLPlain)
			c.KafkaSASLPassword = "not-the-password"
			return c
		}, "SASL authentication failed"},
		{"wrong SCRAM-SHA-512 password", func() config.Kafka {
			c := secure(config.SASLScramSHA512)
			c.KafkaSASLPassword = "not-the-password"
			return c
		}, "SASL authentication failed"},
		{"unknown user", func() config.Kafka {
			c := secure(config.SASLScramSHA256)
			c.KafkaSASLUsername = "nobody"
			return c
		}, "SASL authentication failed"},
		{"untrusted certificate (system roots)", func() config.Kafka {
			c := secure(config.SASLScramSHA512)
			c.KafkaTLSCAFile = ""
			return c
		}, "certificate signed by unknown authority"},
		{"certificate not valid for the server name", func() config.Kafka {
			c := secure(config.SASLScramSHA512)
			c.KafkaTLSServerName = "kafka.example.com"
			return c
		}, "not kafka.example.com"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := FromConfig(tc.cfg(), "kafkaio-sasl-test", nil)
			if err != nil {
				t.Fatal(err)
			}
			// The bound is a safety net for a hang, not a timing check: a
			// hang ends in a context error, which fails the assertions.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			for name, call := range map[string]func() error{
				"Ping":         func() error { return Ping(ctx, opts) },
				"EnsureTopics": func() error { return EnsureTopics(ctx, opts, []TopicSpec{{Name: opts.Topic(uniqueName("refused"))}}) },
			} {
				err := call()
				t.Logf("%s: %v", name, err)
				if !errors.Is(err, ErrRefused) {
					t.Errorf("%s = %v, want an error wrapping ErrRefused", name, err)
				}
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s = %v, want it to say %q", name, err, tc.want)
				}
				if err != nil && strings.Contains(err.Error(), "not-the-password") {
					t.Errorf("%s error %q holds the password", name, err)
				}
			}
		})
	}
}

// roundTrip creates a topic, writes a message with NewWriter and reads it
// back with a NewReader consumer-group member, committing it.
func roundTrip(t *testing.T, opts Options) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := Ping(ctx, opts); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	name := uniqueName("sasl")
	if err := EnsureTopics(ctx, opts, []TopicSpec{{Name: opts.Topic(name), Partitions: 1}}); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	w, err := NewWriter(opts, name)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	want := "hello over SASL_SSL " + name
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte(want)}); err != nil {
		t.Fatalf("WriteMessages: %v", err)
	}
	r, err := NewReader(opts, name, uniqueName("group"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := r.FetchMessage(ctx)
	if err != nil {
		t.Fatalf("FetchMessage: %v", err)
	}
	if string(m.Value) != want {
		t.Errorf("read %q, want %q", m.Value, want)
	}
	if err := r.CommitMessages(ctx, m); err != nil {
		t.Errorf("CommitMessages: %v", err)
	}
}
