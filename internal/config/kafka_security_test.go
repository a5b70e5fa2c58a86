package config

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// selfSigned makes a certificate and key with openssl in dir and returns
// their paths.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is not installed (run `make deps`)")
		}
		t.Skip("openssl is not installed (run `make deps`)")
	}
	cert, key = filepath.Join(dir, "c.pem"), filepath.Join(dir, "c.key")
	out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
		"-days", "1", "-subj", "/CN=config-test", "-keyout", key, "-out", cert).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	return cert, key
}

// TestKafkaSecuritySettings loads the SASL and TLS settings through the
// environment, as a service does, and checks what Validate refuses and
// what the accepted settings turn into.
func TestKafkaSecuritySettings(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	t.Run("accepted", func(t *testing.T) {
		cfg := defaults()
		_, err := Load(cfg, LoadOptions{Name: "test", LookupEnv: env(map[string]string{
			"DRIFTWATCH_KAFKA_SASL_MECHANISM":     "SCRAM-SHA-512",
			"DRIFTWATCH_KAFKA_SASL_USERNAME":      "svc",
			"DRIFTWATCH_KAFKA_SASL_PASSWORD_FILE": pwFile,
			"DRIFTWATCH_KAFKA_TLS":                "true",
			"DRIFTWATCH_KAFKA_TLS_CA_FILE":        cert,
			"DRIFTWATCH_KAFKA_TLS_CERT_FILE":      cert,
			"DRIFTWATCH_KAFKA_TLS_KEY_FILE":       key,
			"DRIFTWATCH_KAFKA_TLS_SERVER_NAME":    "kafka.internal",
		})})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if pw, err := cfg.SASLPassword(); err != nil || pw.Reveal() != "from-a-file" {
			t.Errorf("SASLPassword() = %q, %v; want from-a-file (the file without its newline)", pw.Reveal(), err)
		}
		tc, err := cfg.TLSConfig()
		if err != nil {
			t.Fatal(err)
		}
		if tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != "kafka.internal" || tc.InsecureSkipVerify {
			t.Errorf("TLSConfig: RootCAs %v, %d certificates, ServerName %q, InsecureSkipVerify %v; want a pool, 1, kafka.internal, false",
				tc.RootCAs != nil, len(tc.Certificates), tc.ServerName, tc.InsecureSkipVerify)
		}
	})

	t.Run("off by default", func(t *testing.T) {
		cfg := defaults()
		if tc, err := cfg.TLSConfig(); tc != nil || err != nil {
			t.Errorf("TLSConfig() = %v, %v; want nil, nil", tc, err)
		}
		if m := cfg.SASLMechanism(); m != "" {
			t.Errorf("SASLMechanism() = %q, want empty", m)
		}
	})

	t.Run("skip-verify only when set", func(t *testing.T) {
		cfg := defaults()
		if _, err := Load(cfg, LoadOptions{Name: "test", Args: []string{"-kafka-tls", "-kafka-tls-insecure-skip-verify"}, LookupEnv: env(nil)}); err != nil {
			t.Fatal(err)
		}
		if tc, err := cfg.TLSConfig(); err != nil || !tc.InsecureSkipVerify {
			t.Errorf("TLSConfig() = %+v, %v; want InsecureSkipVerify", tc, err)
		}
	})

	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"unknown mechanism", map[string]string{"DRIFTWATCH_KAFKA_SASL_MECHANISM": "GSSAPI", "DRIFTWATCH_KAFKA_SASL_USERNAME": "u", "DRIFTWATCH_KAFKA_SASL_PASSWORD": "p"},
			[]string{`kafka_sasl_mechanism: "GSSAPI" is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`}},
		{"mechanism without user name or password", map[string]string{"DRIFTWATCH_KAFKA_SASL_MECHANISM": "PLAIN"},
			[]string{"kafka_sasl_username: is required with kafka_sasl_mechanism PLAIN", "kafka_sasl_password: is required with kafka_sasl_mechanism PLAIN"}},
		{"password without mechanism", map[string]string{"DRIFTWATCH_KAFKA_SASL_USERNAME": "u", "DRIFTWATCH_KAFKA_SASL_PASSWORD": "hunter2"},
			[]string{"kafka_sasl_mechanism: is empty but a SASL user name or password is set"}},
		{"password and password file", map[string]string{"DRIFTWATCH_KAFKA_SASL_MECHANISM": "PLAIN", "DRIFTWATCH_KAFKA_SASL_USERNAME": "u", "DRIFTWATCH_KAFKA_SASL_PASSWORD": "hunter2", "DRIFTWATCH_KAFKA_SASL_PASSWORD_FILE": pwFile},
			[]string{"kafka_sasl_password: set both it and kafka_sasl_password_file"}},
		{"unreadable password file", map[string]string{"DRIFTWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "DRIFTWATCH_KAFKA_SASL_USERNAME": "u", "DRIFTWATCH_KAFKA_SASL_PASSWORD_FILE": missing},
			[]string{"kafka_sasl_password_file: read the SASL password: open " + missing}},
		{"cert without key", map[string]string{"DRIFTWATCH_KAFKA_TLS": "true", "DRIFTWATCH_KAFKA_TLS_CERT_FILE": cert},
			[]string{"kafka_tls_cert_file is set without kafka_tls_key_file"}},
		{"key without cert", map[string]string{"DRIFTWATCH_KAFKA_TLS": "true", "DRIFTWATCH_KAFKA_TLS_KEY_FILE": key},
			[]string{"kafka_tls_key_file is set without kafka_tls_cert_file"}},
		{"unreadable CA file", map[string]string{"DRIFTWATCH_KAFKA_TLS": "true", "DRIFTWATCH_KAFKA_TLS_CA_FILE": missing},
			[]string{"kafka_tls_ca_file: open " + missing}},
		{"CA file without a certificate", map[string]string{"DRIFTWATCH_KAFKA_TLS": "true", "DRIFTWATCH_KAFKA_TLS_CA_FILE": notPEM},
			[]string{"kafka_tls_ca_file: " + notPEM + " holds no PEM certificate"}},
		{"key that is not a key", map[string]string{"DRIFTWATCH_KAFKA_TLS": "true", "DRIFTWATCH_KAFKA_TLS_CERT_FILE": cert, "DRIFTWATCH_KAFKA_TLS_KEY_FILE": notPEM},
			[]string{"kafka_tls_cert_file and kafka_tls_key_file:"}},
		{"TLS files without kafka_tls", map[string]string{"DRIFTWATCH_KAFKA_TLS_CA_FILE": cert, "DRIFTWATCH_KAFKA_TLS_INSECURE_SKIP_VERIFY": "true"},
			[]string{"kafka_tls_ca_file: is set but kafka_tls is false", "kafka_tls_insecure_skip_verify: is set but kafka_tls is false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(defaults(), LoadOptions{Name: "test", LookupEnv: env(tc.env)})
			if err == nil {
				t.Fatal("Load = nil, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "from-a-file") {
				t.Errorf("error holds the password:\n%v", err)
			}
		})
	}

	t.Run("check-config redacts the password", func(t *testing.T) {
		cfg := defaults()
		if _, err := Load(cfg, LoadOptions{Name: "test", Args: []string{"-check-config"}, LookupEnv: env(map[string]string{
			"DRIFTWATCH_KAFKA_SASL_MECHANISM": "PLAIN", "DRIFTWATCH_KAFKA_SASL_USERNAME": "u", "DRIFTWATCH_KAFKA_SASL_PASSWORD": "hunter2",
		})}); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := Dump(&out, cfg); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.String(), "hunter2") || !strings.Contains(out.String(), "kafka_sasl_password: <redacted>") {
			t.Errorf("dump:\n%s", out.String())
		}
	})
}

// TestKafkaEnvRoundTrips: the variables Env returns load back into the
// same settings, so a child process gets exactly what its parent has.
func TestKafkaEnvRoundTrips(t *testing.T) {
	want := Kafka{KafkaBrokers: []string{"k1:9096", "k2:9096"}, TopicPrefix: "p.", KafkaSASLMechanism: "SCRAM-SHA-256",
		KafkaSASLUsername: "u", KafkaSASLPassword: "hunter2", KafkaTLS: true, KafkaTLSServerName: "kafka.internal"}
	vars := map[string]string{}
	for _, kv := range want.Env() {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	cfg := defaults()
	if _, err := Load(cfg, LoadOptions{Name: "test", LookupEnv: env(vars)}); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Kafka; fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) || got.KafkaSASLPassword.Reveal() != "hunter2" {
		t.Errorf("loaded %#v from %v, want %#v", got, vars, want)
	}
}
