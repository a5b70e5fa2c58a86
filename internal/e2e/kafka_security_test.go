package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/loadgen"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/internal/teststack"
)

// TestServicesOverSASLSSL runs ingest, the trainer and the monitor (and
// the driftwatch CLI through the monitor) against a broker that they reach
// only through its SASL_SSL listener (certificates made by openssl at start), each with
// another mechanism or password route, and follows one real data path
// through each:
//
//   - events produced over SASL_SSL are stored by ingest in ClickHouse;
//   - the monitor's manual-trigger API publishes a trigger that the
//     trainer reads and records in training_runs, and so does
//     `driftwatch retrain`, which asks that API;
//   - each service's /readyz, whose Kafka check talks SASL_SSL, says ready.
//
// Then each binary is started with a wrong password or without the CA
// that signed the broker's certificate: it exits non-zero at start with
// an error that says so, instead of waiting as for a cluster that is down.
func TestServicesOverSASLSSL(t *testing.T) {
	kfk := teststack.StartKafkaSASLSSL(t)
	ch := teststack.StartClickHouse(t)
	bins := map[string]string{}
	for _, name := range []string{"ingest", "monitor", "trainer", "driftwatch"} {
		bins[name] = teststack.Build(t, "./services/"+name)
	}
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "kafka-password")
	if err := os.WriteFile(pwFile, []byte(kfk.SASLPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{
		"DRIFTWATCH_KAFKA_BROKERS=" + kfk.SASLSSLBrokers()[0],
		"DRIFTWATCH_KAFKA_TLS=true",
		"DRIFTWATCH_KAFKA_TLS_CA_FILE=" + kfk.TLSFile("ca.pem"),
		"DRIFTWATCH_KAFKA_SASL_USERNAME=" + kfk.SASLUsername,
		"DRIFTWATCH_CLICKHOUSE_URL=" + ch.URL("driftwatch"),
		"DRIFTWATCH_TOPIC_PREFIX=driftwatch.",
	}
	with := func(extra ...string) []string { return append(append([]string(nil), base...), extra...) }
	addr := func() string { return "127.0.0.1:" + strconv.Itoa(teststack.FreePort(t)) }

	// ingest: SCRAM-SHA-512, the password from a file.
	ingestAddr := addr()
	ing := teststack.Start(t, "ingest", bins["ingest"], with("DRIFTWATCH_HTTP_ADDR="+ingestAddr, "DRIFTWATCH_INGEST_BATCH_AGE=200ms",
		"DRIFTWATCH_KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "DRIFTWATCH_KAFKA_SASL_PASSWORD_FILE="+pwFile))
	teststack.WaitHTTP(t, "http://"+ingestAddr+"/readyz", 90*time.Second, ing)

	kopts, err := kafkaio.FromConfig(config.Kafka{
		KafkaBrokers: kfk.SASLSSLBrokers(), TopicPrefix: "driftwatch.",
		KafkaSASLMechanism: config.SASLScramSHA256, KafkaSASLUsername: kfk.SASLUsername, KafkaSASLPassword: config.Secret(kfk.SASLPassword),
		KafkaTLS: true, KafkaTLSCAFile: kfk.TLSFile("ca.pem"),
	}, "e2e-producer", nil)
	if err != nil {
		t.Fatal(err)
	}
	gcfg := loadgen.DefaultConfig()
	gcfg.Seed = 13
	gcfg.Start = time.Now().UTC().Add(-time.Hour)
	gcfg.Step = time.Second
	gcfg.Outcomes.Share = 0
	gcfg.BusinessMetrics.Enabled = false
	gen, err := loadgen.New(gcfg)
	if err != nil {
		t.Fatal(err)
	}
	produce(t, kopts, gen, 300)
	want := uint64(gen.Stats().Inferences)
	conn, err := chclient.Open(context.Background(), chclient.Config{URL: ch.URL("driftwatch")}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitFor(t, fmt.Sprintf("%d inferences, produced over SASL_SSL, in ClickHouse", want), 90*time.Second, func() (bool, string) {
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM inferences FINAL").Scan(&n); err != nil {
			return false, err.Error()
		}
		return n >= want, fmt.Sprintf("%d rows", n)
	})

	// trainer: PLAIN, the password from the environment, and the client
	// certificate the broker accepts.
	trainerAddr := addr()
	trainerEnv := with("DRIFTWATCH_HTTP_ADDR="+trainerAddr, "DRIFTWATCH_TRAINER_DATA_DIR="+filepath.Join(dir, "trainer"),
		"DRIFTWATCH_KAFKA_SASL_MECHANISM=PLAIN", "DRIFTWATCH_KAFKA_SASL_PASSWORD="+kfk.SASLPassword,
		"DRIFTWATCH_KAFKA_TLS_CERT_FILE="+kfk.TLSFile("client.pem"), "DRIFTWATCH_KAFKA_TLS_KEY_FILE="+kfk.TLSFile("client.key"))
	tr := teststack.Start(t, "trainer", bins["trainer"], trainerEnv)
	teststack.WaitHTTP(t, "http://"+trainerAddr+"/readyz", 90*time.Second, tr)

	recorded := func(what, triggerID string) {
		t.Helper()
		if !regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`).MatchString(triggerID) {
			t.Fatalf("trigger id %q is not a plain token", triggerID)
		}
		q := fmt.Sprintf("SELECT count() FROM training_runs WHERE trigger_id = '%s'", triggerID)
		waitFor(t, what+" recorded by the trainer in training_runs", 90*time.Second, func() (bool, string) {
			var n uint64
			if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
				return false, err.Error()
			}
			return n > 0, fmt.Sprintf("%d rows", n)
		})
	}

	// monitor: SCRAM-SHA-256, the password from a file; its manual-trigger
	// API publishes with its SASL_SSL writer.
	monitorAddr := addr()
	mon := teststack.Start(t, "monitor", bins["monitor"], with("DRIFTWATCH_HTTP_ADDR="+monitorAddr, "DRIFTWATCH_API_AUTH=none",
		"DRIFTWATCH_KAFKA_SASL_MECHANISM=SCRAM-SHA-256", "DRIFTWATCH_KAFKA_SASL_PASSWORD_FILE="+pwFile))
	teststack.WaitHTTP(t, "http://"+monitorAddr+"/readyz", 90*time.Second, mon)
	resp, err := http.Post("http://"+monitorAddr+"/api/v1/models/model-0/triggers", "application/json",
		strings.NewReader(`{"note":"sasl e2e","idempotency_key":"sasl-e2e"}`))
	if err != nil {
		t.Fatal(err)
	}
	var manual struct {
		Outcome string `json:"outcome"`
		Trigger struct {
			TriggerID string `json:"trigger_id"`
		} `json:"trigger"`
	}
	err = json.NewDecoder(resp.Body).Decode(&manual)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated || manual.Trigger.TriggerID == "" {
		t.Fatalf("POST manual trigger: %d %+v %v", resp.StatusCode, manual, err)
	}
	recorded("the monitor's trigger "+manual.Trigger.TriggerID, manual.Trigger.TriggerID)

	// The CLI asks the monitor, which publishes over SASL_SSL: the CLI
	// itself needs no Kafka settings.
	out, err := runCLI(t, bins["driftwatch"], nil, "retrain", "-model", "model-0", "-reason", "sasl e2e", "-monitor-url", "http://"+monitorAddr)
	if err != nil {
		t.Fatalf("driftwatch retrain: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`manual retrain trigger (\S+) for model-0: published by the monitor`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("driftwatch retrain printed %q, want the trigger id", out)
	}
	recorded("the CLI's trigger "+m[1], m[1])

	// Refusals: a wrong password, an untrusted certificate.
	const wrong = "not-the-password"
	for _, tc := range []struct {
		name, bin string
		env       []string
		args      []string
		want      string
	}{
		{"ingest, wrong SCRAM-SHA-512 password", "ingest", with("DRIFTWATCH_HTTP_ADDR="+addr(),
			"DRIFTWATCH_KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "DRIFTWATCH_KAFKA_SASL_PASSWORD="+wrong), nil, "SASL authentication failed"},
		{"trainer, wrong PLAIN password", "trainer", with("DRIFTWATCH_HTTP_ADDR="+addr(), "DRIFTWATCH_TRAINER_DATA_DIR="+filepath.Join(dir, "trainer2"),
			"DRIFTWATCH_KAFKA_SASL_MECHANISM=PLAIN", "DRIFTWATCH_KAFKA_SASL_PASSWORD="+wrong), nil, "SASL authentication failed"},
		{"monitor, untrusted certificate", "monitor", with("DRIFTWATCH_HTTP_ADDR="+addr(), "DRIFTWATCH_KAFKA_TLS_CA_FILE=",
			"DRIFTWATCH_KAFKA_SASL_MECHANISM=SCRAM-SHA-256", "DRIFTWATCH_KAFKA_SASL_PASSWORD_FILE="+pwFile), nil, "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The bound only turns a hang into a failure; the assertion is
			// on the exit and the message.
			p := teststack.Start(t, tc.name, bins[tc.bin], tc.env, tc.args...)
			err := p.Wait(t, 2*time.Minute)
			out := p.Output()
			if err == nil {
				t.Errorf("%s exited 0, want a failure; output:\n%s", tc.bin, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("%s output lacks %q:\n%s", tc.bin, tc.want, out)
			}
			if strings.Contains(out, wrong) || strings.Contains(out, kfk.SASLPassword) {
				t.Errorf("%s output holds a password:\n%s", tc.bin, out)
			}
			t.Logf("%s: %s", tc.bin, lastLine(out))
		})
	}
}

func runCLI(t *testing.T, bin string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = testenv.ChildEnv(env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
