package ingest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/ingest/personal"
)

// The raw personal values the tests send; none may be stored.
const (
	rawEmail  = "alice.personal@example.org"
	rawPhone1 = "+47-555-0101"
	rawPhone2 = "+47-555-0202"
	rawUser   = "user-4711-secret"
)

func personalInference(id, phone string, ts time.Time) string {
	return fmt.Sprintf(`{"event_id":"%s","model_id":"credit-risk","model_version":"v1","prediction_id":"p-%s","timestamp":%d,`+
		`"features":{"age":41,"email":"%s","phone":"%s","country":"NO"},"prediction":{"score":0.5},"segment":{"region":"eu","user":"%s"}}`,
		id, id, ts.UnixMilli(), rawEmail, phone, rawUser)
}

// personalSettings drop email, hash phone for credit-risk and hash the user
// segment for every model, under a key in a temporary file.
func personalSettings(t *testing.T, keep bool) Settings {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "hash.key")
	if err := os.WriteFile(keyFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Settings{ConsumerGroup: "g", BatchRows: 100, BatchAge: 200 * time.Millisecond,
		Models: map[string]ModelSettings{
			"credit-risk": {Personal: map[string]string{"email": "drop", "phone": "hash"}},
			"*":           {Personal: map[string]string{"user": "hash"}},
		},
		PersonalHashKeyFile: keyFile, DeadLetterKeepPersonal: keep}
}

// runIngest runs an Ingester over what the stack's topics hold until wait
// reports true, then stops it.
func runIngest(t *testing.T, s *stack, set Settings, wait func() bool) {
	t.Helper()
	ing, err := New(Options{Kafka: s.kopts, Settings: set, Conn: s.conn, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	deadline := time.Now().Add(90 * time.Second)
	for !wait() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatal("timed out waiting for ingest")
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	ing.Close()
}

// rawIn counts, in every table of the database, the rows whose text holds
// one of the values.
func (s *stack) rawIn(t *testing.T, values ...string) map[string]uint64 {
	t.Helper()
	rows, err := s.conn.Query(context.Background(), "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT IN ('MaterializedView', 'View') ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	out := map[string]uint64{}
	for _, tbl := range tables {
		for _, v := range values {
			if n := s.count(t, fmt.Sprintf("SELECT count() FROM `%s` WHERE position(formatRow('TSV', *), '%s') > 0", tbl, v)); n > 0 {
				out[tbl+":"+v] = n
			}
		}
	}
	return out
}

// TestPersonalDataGoverned sends credit-risk inferences with an e-mail and
// a phone feature and a user segment through real Kafka into ClickHouse:
// the e-mail is not stored, phones and users are hashed (equal values
// alike, different ones apart), and no raw value appears in any table.
// Two rejected events carry the same fields: a parseable one (missing its
// prediction) is stored and forwarded with the fields dropped or hashed, a
// broken one is withheld.
func TestPersonalDataGoverned(t *testing.T) {
	s := newStack(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	s.produce(t, "inferences",
		kafka.Message{Key: []byte("credit-risk"), Value: []byte(personalInference("e1", rawPhone1, now))},
		kafka.Message{Key: []byte("credit-risk"), Value: []byte(personalInference("e2", rawPhone1, now.Add(-time.Second)))},
		kafka.Message{Key: []byte("credit-risk"), Value: []byte(personalInference("e3", rawPhone2, now.Add(-2*time.Second)))},
		kafka.Message{Key: []byte("credit-risk"), Value: []byte(strings.Replace(personalInference("bad1", rawPhone1, now), `,"prediction":{"score":0.5}`, "", 1))},
		kafka.Message{Key: []byte("credit-risk"), Value: []byte(personalInference("bad2", rawPhone2, now)[:150])},
	)
	runIngest(t, s, personalSettings(t, false), func() bool {
		return s.count(t, "SELECT count() FROM inferences") >= 3 && s.count(t, "SELECT count() FROM dead_letters") >= 2
	})

	phones := map[string]string{}
	for _, id := range []string{"e1", "e2", "e3"} {
		var (
			num      map[string]float64
			cat, seg map[string]string
		)
		if err := s.conn.QueryRow(context.Background(), "SELECT features_numeric, features_categorical, segment FROM inferences WHERE event_id = $1", id).Scan(&num, &cat, &seg); err != nil {
			t.Fatal(err)
		}
		if _, ok := cat["email"]; ok || num["age"] != 41 || cat["country"] != "NO" || seg["region"] != "eu" {
			t.Errorf("%s: numeric %v categorical %v segment %v; want no email, age and country kept", id, num, cat, seg)
		}
		if !strings.HasPrefix(cat["phone"], personal.HashPrefix) || len(cat["phone"]) != len(personal.HashPrefix)+32 || !strings.HasPrefix(seg["user"], personal.HashPrefix) {
			t.Errorf("%s: phone %q, user %q; want hmac:<32 hex digits>", id, cat["phone"], seg["user"])
		}
		phones[id] = cat["phone"]
	}
	if phones["e1"] != phones["e2"] || phones["e1"] == phones["e3"] {
		t.Errorf("phone hashes %v: e1 and e2 (same phone) must be equal, e3 different", phones)
	}
	// Equal hashes still count: two events with the first phone.
	if n := s.count(t, fmt.Sprintf("SELECT count() FROM inferences WHERE features_categorical['phone'] = '%s'", phones["e1"])); n != 2 {
		t.Errorf("inferences with e1's phone hash = %d, want 2", n)
	}
	if got := s.rawIn(t, rawEmail, rawPhone1, rawPhone2, rawUser); len(got) != 0 {
		t.Errorf("raw personal values stored: %v", got)
	}
	if n := s.count(t, "SELECT count() FROM dead_letters WHERE position(payload, 'driftwatch_withheld') > 0"); n != 1 {
		t.Errorf("withheld dead_letters payloads = %d, want 1 (the broken event)", n)
	}
	if n := s.count(t, fmt.Sprintf("SELECT count() FROM dead_letters WHERE reason = 'missing_field' AND JSONExtractString(payload, 'features', 'phone') = '%s'", phones["e1"])); n != 1 {
		t.Errorf("dead_letters rows of bad1 with the phone hashed as stored = %d, want 1", n)
	}
	verdicts := map[string]int{}
	for _, m := range s.readDeadLetters(t, 2) {
		for _, raw := range []string{rawEmail, rawPhone1, rawPhone2, rawUser} {
			if strings.Contains(string(m.Value), raw) {
				t.Errorf("dead-letter topic copy holds %q: %s", raw, m.Value)
			}
		}
		verdicts[header(m, HeaderPersonal)]++
	}
	if verdicts[personalGoverned] != 1 || verdicts[personalWithheld] != 1 {
		t.Errorf("%s headers: %v, want one governed and one withheld", HeaderPersonal, verdicts)
	}
}

// TestPersonalDeadLettersKept: with dead_letter_keep_personal the rejected
// event's original bytes reach the dead_letters table and the topic, while
// valid events are still governed.
func TestPersonalDeadLettersKept(t *testing.T) {
	s := newStack(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	bad := strings.Replace(personalInference("bad1", rawPhone1, now), `,"prediction":{"score":0.5}`, "", 1)
	s.produce(t, "inferences",
		kafka.Message{Key: []byte("credit-risk"), Value: []byte(personalInference("e1", rawPhone1, now))},
		kafka.Message{Key: []byte("credit-risk"), Value: []byte(bad)},
	)
	runIngest(t, s, personalSettings(t, true), func() bool {
		return s.count(t, "SELECT count() FROM inferences") >= 1 && s.count(t, "SELECT count() FROM dead_letters") >= 1
	})
	got := s.rawIn(t, rawEmail, rawPhone1)
	if got["dead_letters:"+rawEmail] != 1 || got["dead_letters:"+rawPhone1] != 1 || len(got) != 2 {
		t.Errorf("raw values stored: %v; want them in dead_letters only", got)
	}
	if m := s.readDeadLetters(t, 1)[0]; string(m.Value) != bad || header(m, HeaderPersonal) != "" {
		t.Errorf("dead-letter topic copy %s (header %q), want the original bytes", m.Value, header(m, HeaderPersonal))
	}
}

// TestPersonalSettings: a hash rule needs a key file, actions are drop or
// hash, and New refuses a missing key file.
func TestPersonalSettings(t *testing.T) {
	set := DefaultSettings()
	set.Models = map[string]ModelSettings{"credit-risk": {Personal: map[string]string{"phone": "hash", "email": "erase"}}}
	err := set.Validate()
	if err == nil || !strings.Contains(err.Error(), "personal_hash_key_file: required when a personal rule hashes") ||
		!strings.Contains(err.Error(), `models.credit-risk.personal.email: "erase" is not drop or hash`) {
		t.Errorf("Validate = %v", err)
	}
	set.Models["credit-risk"].Personal["email"] = "drop"
	dir := t.TempDir()
	set.PersonalHashKeyFile = filepath.Join(dir, "short.key")
	if err := os.WriteFile(set.PersonalHashKeyFile, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := set.Validate(); err == nil || !strings.Contains(err.Error(), "personal_hash_key_file: the personal hash key is 5 bytes, at least 16 are needed") {
		t.Errorf("Validate with a short key = %v", err)
	}
	if err := os.WriteFile(set.PersonalHashKeyFile, []byte("0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := set.Validate(); err != nil {
		t.Errorf("Validate with a 16-byte key = %v", err)
	}
	set.PersonalHashKeyFile = filepath.Join(dir, "missing.key")
	_, err = New(Options{Settings: set, Registerer: prometheus.NewRegistry(), newReader: func(string, string) (Reader, error) { return nil, nil }})
	if err == nil || !strings.Contains(err.Error(), "personal_hash_key_file: read the hash key") {
		t.Errorf("New with a missing key file = %v", err)
	}
}
