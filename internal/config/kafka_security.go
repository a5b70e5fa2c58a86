package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
)

// The SASL mechanisms driftwatch's Kafka clients speak, as kafka_sasl_mechanism
// names them (the names Kafka's sasl.enabled.mechanisms uses).
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// SASLMechanism returns kafka_sasl_mechanism in its canonical upper-case
// form ("" when SASL is off).
func (k *Kafka) SASLMechanism() string {
	return strings.ToUpper(strings.TrimSpace(k.KafkaSASLMechanism))
}

// SASLPassword returns the SASL password: kafka_sasl_password, or the
// contents of kafka_sasl_password_file with one trailing newline (and
// carriage return) removed. The error names the file, never the password.
func (k *Kafka) SASLPassword() (Secret, error) {
	if k.KafkaSASLPasswordFile == "" {
		return k.KafkaSASLPassword, nil
	}
	b, err := os.ReadFile(k.KafkaSASLPasswordFile)
	if err != nil {
		return "", fmt.Errorf("read the SASL password: %w", err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if pw == "" {
		return "", fmt.Errorf("%s is empty", k.KafkaSASLPasswordFile)
	}
	return Secret(pw), nil
}

// TLSConfig returns the TLS settings of the Kafka clients, or nil when
// kafka_tls is off. It reads and parses the CA, certificate and key files,
// so a missing or malformed file is reported here, at start, not at the
// first connection.
func (k *Kafka) TLSConfig() (*tls.Config, error) {
	if !k.KafkaTLS {
		return nil, nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         k.KafkaTLSServerName,
		InsecureSkipVerify: k.KafkaTLSInsecureSkipVerify, // only when set explicitly; documented as testing only
	}
	var errs []error
	if k.KafkaTLSCAFile != "" {
		pem, err := os.ReadFile(k.KafkaTLSCAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("kafka_tls_ca_file: %w", err))
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("kafka_tls_ca_file: %s holds no PEM certificate", k.KafkaTLSCAFile))
			}
			cfg.RootCAs = pool
		}
	}
	switch {
	case k.KafkaTLSCertFile != "" && k.KafkaTLSKeyFile == "":
		errs = append(errs, errors.New("kafka_tls_cert_file is set without kafka_tls_key_file"))
	case k.KafkaTLSCertFile == "" && k.KafkaTLSKeyFile != "":
		errs = append(errs, errors.New("kafka_tls_key_file is set without kafka_tls_cert_file"))
	case k.KafkaTLSCertFile != "":
		cert, err := tls.LoadX509KeyPair(k.KafkaTLSCertFile, k.KafkaTLSKeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("kafka_tls_cert_file and kafka_tls_key_file: %w", err))
		} else {
			cfg.Certificates = []tls.Certificate{cert}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

// validateSecurity reports every invalid SASL or TLS setting; nil when
// they are all valid.
func (k *Kafka) validateSecurity() error {
	var p problems
	mech := k.SASLMechanism()
	switch mech {
	case "", SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		p.add("kafka_sasl_mechanism", "%q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", k.KafkaSASLMechanism)
	}
	if k.KafkaSASLPassword != "" && k.KafkaSASLPasswordFile != "" {
		p.add("kafka_sasl_password", "set both it and kafka_sasl_password_file; give one")
	}
	if mech == "" {
		if k.KafkaSASLUsername != "" || k.KafkaSASLPassword != "" || k.KafkaSASLPasswordFile != "" {
			p.add("kafka_sasl_mechanism", "is empty but a SASL user name or password is set; name the mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
		}
	} else {
		if k.KafkaSASLUsername == "" {
			p.add("kafka_sasl_username", "is required with kafka_sasl_mechanism %s", mech)
		}
		if k.KafkaSASLPassword == "" && k.KafkaSASLPasswordFile == "" {
			p.add("kafka_sasl_password", "is required with kafka_sasl_mechanism %s (or kafka_sasl_password_file)", mech)
		} else if k.KafkaSASLPasswordFile != "" {
			if _, err := k.SASLPassword(); err != nil {
				p.add("kafka_sasl_password_file", "%v", err)
			}
		}
	}
	if !k.KafkaTLS {
		for _, f := range []struct {
			key string
			set bool
		}{
			{"kafka_tls_ca_file", k.KafkaTLSCAFile != ""},
			{"kafka_tls_cert_file", k.KafkaTLSCertFile != ""},
			{"kafka_tls_key_file", k.KafkaTLSKeyFile != ""},
			{"kafka_tls_server_name", k.KafkaTLSServerName != ""},
			{"kafka_tls_insecure_skip_verify", k.KafkaTLSInsecureSkipVerify},
		} {
			if f.set {
				p.add(f.key, "is set but kafka_tls is false; set kafka_tls: true to use TLS")
			}
		}
	} else if _, err := k.TLSConfig(); err != nil {
		p = append(p, err)
	}
	return errors.Join(p...)
}

// Env returns the DRIFTWATCH_KAFKA_* (and DRIFTWATCH_TOPIC_PREFIX)
// variables that give a child process these settings, secrets included,
// one NAME=value each for every setting that is not empty, so a command
// that starts a service (driftwatch bench) hands on what it was given.
func (k Kafka) Env() []string {
	var out []string
	v := reflect.ValueOf(k)
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("env")
		if name == "" || v.Field(i).IsZero() {
			continue
		}
		var s string
		switch f := v.Field(i).Interface().(type) {
		case []string:
			s = strings.Join(f, ",")
		case Secret:
			s = f.Reveal()
		default:
			s = fmt.Sprint(f)
		}
		out = append(out, name+"="+s)
	}
	return out
}
