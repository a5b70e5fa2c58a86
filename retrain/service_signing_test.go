package retrain

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/signing"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/internal/teststack"
	"github.com/driftwatch/driftwatch/schemas"
)

// TestServiceVerifiesSignatures runs the trainer service with
// trigger_signing_key_file (real Kafka, the embedded ClickHouse): a
// trigger published without a signature, and one signed with another
// key, are dead-lettered with their reasons and leave no training run.
func TestServiceVerifiesSignatures(t *testing.T) {
	conn, db := testdb.Open(t, "trainer_signed")
	cfg := DefaultConfig()
	cfg.KafkaBrokers = testenv.KafkaBrokers(t)
	cfg.TopicPrefix = "trainer-signed-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "."
	cfg.ClickHouseURL = testdb.URL(t, db)
	cfg.HTTPAddr = "127.0.0.1:" + strconv.Itoa(teststack.FreePort(t))
	cfg.DataDir = filepath.Join(t.TempDir(), "trainer")
	cfg.TriggerSigningKeyFile = filepath.Join(t.TempDir(), "signing.key")
	os.WriteFile(cfg.TriggerSigningKeyFile, []byte("trainer-service-signing-key-0123456789\n"), 0o600)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunService(ctx, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	teststack.WaitHTTP(t, "http://"+cfg.HTTPAddr+"/readyz", time.Minute, nil)

	kopts := kafkaio.Options{Brokers: cfg.KafkaBrokers, TopicPrefix: cfg.TopicPrefix}
	w, err := kafkaio.NewWriter(kopts, schemas.TopicRetrainTriggers)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var msgs []kafka.Message
	for i, k := range []*signing.Key{nil, signing.New([]byte("not the trainer's key, 32 bytes or more"))} {
		trig := schemas.NewManualTrigger("model-9", "signature test", time.Now())
		trig.TriggerID, trig.DedupKey = "svc-"+strconv.Itoa(i), "svc-"+strconv.Itoa(i)
		raw, _ := json.Marshal(trig)
		m := kafka.Message{Key: []byte("model-9"), Value: raw}
		k.AddTo(&m)
		msgs = append(msgs, m)
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	rd, err := kafkaio.NewReader(kopts, schemas.TopicDeadLetters, cfg.TopicPrefix+"dead-letter-reader")
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	got := map[string]string{}
	for len(got) < 2 {
		m, err := rd.FetchMessage(rctx)
		if err != nil {
			t.Fatalf("dead letters %v: %v", got, err)
		}
		var trig schemas.RetrainTrigger
		_ = json.Unmarshal(m.Value, &trig)
		got[trig.TriggerID] = headers(m)[schemas.HeaderReason]
	}
	if got["svc-0"] != string(signing.ReasonUnsigned) || got["svc-1"] != string(signing.ReasonBadSignature) {
		t.Errorf("dead-letter reasons %v, want svc-0 unsigned_trigger and svc-1 bad_signature", got)
	}
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM training_runs").Scan(&n); err != nil || n != 0 {
		t.Errorf("training_runs has %d rows (%v), want none", n, err)
	}
}
