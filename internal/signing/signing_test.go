package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/segmentio/kafka-go"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// The signature is HMAC-SHA256 as crypto/hmac computes it, checked
// against RFC 4231 test case 2 (key "Jefe").
func TestSignMatchesRFC4231(t *testing.T) {
	got := New([]byte("Jefe")).Sign([]byte("what do ya want for nothing?"))
	want := "v1=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	k := New(testKey)
	value := []byte(`{"trigger_id":"t1","model_id":"m"}`)
	signed := kafka.Message{Value: value}
	k.AddTo(&signed)
	h := func(v string) []kafka.Header { return []kafka.Header{{Key: Header, Value: []byte(v)}} }
	for _, c := range []struct {
		name string
		msg  kafka.Message
		want error
	}{
		{"signed", signed, nil},
		{"unsigned", kafka.Message{Value: value}, ErrUnsigned},
		{"other key", func() kafka.Message {
			m := kafka.Message{Value: value}
			New([]byte("another key of at least 32 bytes!")).AddTo(&m)
			return m
		}(), ErrBadSignature},
		{"altered value", kafka.Message{Value: []byte(`{"trigger_id":"t1","model_id":"n"}`), Headers: signed.Headers}, ErrBadSignature},
		{"no version", kafka.Message{Value: value, Headers: h(k.Sign(value)[3:])}, ErrBadSignature},
		{"not hex", kafka.Message{Value: value, Headers: h("v1=zz")}, ErrBadSignature},
		{"truncated", kafka.Message{Value: value, Headers: h(k.Sign(value)[:20])}, ErrBadSignature},
		{"two headers", kafka.Message{Value: value, Headers: append(h(k.Sign(value)), h(k.Sign(value))...)}, ErrBadSignature},
		{"empty header", kafka.Message{Value: value, Headers: h("")}, ErrBadSignature},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := k.Verify(c.msg); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Errorf("Verify = %v, want %v", err, c.want)
			}
		})
	}
	if Reason(ErrUnsigned) != ReasonUnsigned || Reason(ErrBadSignature) != ReasonBadSignature {
		t.Error("Reason does not map the errors")
	}
	var none *Key
	if err := none.Verify(kafka.Message{Value: value}); err != nil {
		t.Errorf("a nil Key refused %v", err)
	}
	m := kafka.Message{Value: value}
	none.AddTo(&m)
	if len(m.Headers) != 0 {
		t.Error("a nil Key signed")
	}
	if New(nil) != nil {
		t.Error("New(nil) is not nil")
	}
}

// FuzzVerify: whatever the header and value, Verify does not panic and
// accepts only the value's own HMAC.
func FuzzVerify(f *testing.F) {
	k := New(testKey)
	v := []byte(`{"trigger_id":"manual-1","model_id":"model-0","reason":"manual"}`)
	f.Add(v, []byte(k.Sign(v)))
	f.Add(v, []byte("v1="))
	f.Add([]byte{}, []byte("v2=00"))
	f.Fuzz(func(t *testing.T, value, sig []byte) {
		err := k.Verify(kafka.Message{Value: value, Headers: []kafka.Header{{Key: Header, Value: sig}}})
		mac := hmac.New(sha256.New, testKey)
		mac.Write(value)
		ok := string(sig) == "v1="+hex.EncodeToString(mac.Sum(nil))
		if ok != (err == nil) && !(err == nil && len(sig) > 3) {
			t.Errorf("Verify(%q, %q) = %v", value, sig, err)
		}
	})
}
