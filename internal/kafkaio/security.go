package kafkaio

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/driftwatch/driftwatch/internal/config"
)

// ErrRefused is wrapped by every error saying that the cluster refused
// this client's credentials or that its certificate could not be trusted:
// a wrong SASL password, an unknown mechanism on the broker, an untrusted
// or misnamed broker certificate, a client certificate the broker
// rejected. Retrying does not help, so a service stops at start with it
// instead of waiting as it would for a cluster that is still starting.
var ErrRefused = errors.New("the Kafka cluster refused the connection")

// FromConfig turns the shared Kafka settings into Options: brokers, topic
// prefix, SASL mechanism and TLS, with clientID and log for the
// Options of the same name. It reads the password and certificate files,
// so a missing file is an error here, at start.
func FromConfig(k config.Kafka, clientID string, log *slog.Logger) (Options, error) {
	opts := Options{Brokers: k.KafkaBrokers, TopicPrefix: k.TopicPrefix, ClientID: clientID, Logger: log,
		ReplicationFactor: k.TopicReplicationFactor, MinInsyncReplicas: k.TopicMinInsyncReplicas}
	tc, err := k.TLSConfig()
	if err != nil {
		return Options{}, fmt.Errorf("kafka TLS: %w", err)
	}
	opts.TLS = tc
	mech := k.SASLMechanism()
	if mech == "" {
		return opts, nil
	}
	pw, err := k.SASLPassword()
	if err != nil {
		return Options{}, fmt.Errorf("kafka SASL: %w", err)
	}
	switch mech {
	case config.SASLPlain:
		opts.SASL = plain.Mechanism{Username: k.KafkaSASLUsername, Password: pw.Reveal()}
	case config.SASLScramSHA256, config.SASLScramSHA512:
		algo := scram.SHA256
		if mech == config.SASLScramSHA512 {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, k.KafkaSASLUsername, pw.Reveal())
		if err != nil {
			return Options{}, fmt.Errorf("kafka SASL %s: %w", mech, err)
		}
		opts.SASL = m
	default:
		return Options{}, fmt.Errorf("kafka_sasl_mechanism: %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", k.KafkaSASLMechanism)
	}
	return opts, nil
}

// refused wraps err with ErrRefused and a hint naming the settings to check
// when err says the cluster refused the credentials or the certificate;
// other errors are returned as they are.
func refused(err error) error {
	if err == nil {
		return nil
	}
	var (
		kerr      kafka.Error
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		alert     tls.AlertError
		record    tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &kerr) && (kerr == kafka.SASLAuthenticationFailed || kerr == kafka.UnsupportedSASLMechanism || kerr == kafka.IllegalSASLState):
		return fmt.Errorf("%w: SASL authentication failed (check kafka_sasl_mechanism, kafka_sasl_username and the password): %w", ErrRefused, err)
	case errors.As(err, &unknownCA):
		return fmt.Errorf("%w: the broker's TLS certificate is signed by an unknown authority (check kafka_tls_ca_file): %w", ErrRefused, err)
	case errors.As(err, &hostname):
		return fmt.Errorf("%w: the broker's TLS certificate is not valid for its address (check kafka_tls_server_name): %w", ErrRefused, err)
	case errors.As(err, &invalid), errors.As(err, &verify):
		return fmt.Errorf("%w: the broker's TLS certificate is not valid: %w", ErrRefused, err)
	case errors.As(err, &alert):
		return fmt.Errorf("%w: the broker ended the TLS handshake (a client certificate it does not accept?): %w", ErrRefused, err)
	case errors.As(err, &record):
		return fmt.Errorf("%w: the broker does not speak TLS on this port (kafka_tls is true; is it a PLAINTEXT or SASL_PLAINTEXT listener?): %w", ErrRefused, err)
	}
	return err
}
