// Package signing signs and verifies retrain triggers, so that write
// access to the retrain-triggers topic is not a way to spend the training
// budget: the monitor and the CLI add a header
//
//	driftwatch-signature: v1=<hex HMAC-SHA256 of the message value>
//
// under the key of trigger_signing_key_file, and a trainer with that key
// dead-letters a trigger without the header (reason unsigned_trigger) or
// with one that does not match (bad_signature). The signature covers the
// value only: the key (the model id) and the schema header decide nothing
// the value does not also say, and the trainer reads the model from the
// value.
package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/schemas"
)

// Header is the Kafka header that carries a trigger's signature.
const Header = "driftwatch-signature"

// version is the signature scheme's prefix; a later scheme gets v2=.
const version = "v1="

// Dead-letter reasons of a trigger that fails verification.
const (
	ReasonUnsigned     schemas.Reason = "unsigned_trigger"
	ReasonBadSignature schemas.Reason = "bad_signature"
)

// Errors of Verify; errors.Is tells them apart.
var (
	ErrUnsigned     = errors.New("trigger has no " + Header + " header, and this trainer accepts only signed triggers (trigger_signing_key_file)")
	ErrBadSignature = errors.New("trigger's " + Header + " does not match its value under trigger_signing_key_file's key: forged, altered, or signed with another key")
)

// Key signs and verifies with one HMAC-SHA256 key. A nil *Key signs
// nothing and accepts everything, for a deployment without a key.
type Key struct{ k []byte }

// New returns a Key, or nil when key is empty.
func New(key []byte) *Key {
	if len(key) == 0 {
		return nil
	}
	return &Key{k: append([]byte(nil), key...)}
}

func (k *Key) mac(value []byte) []byte {
	h := hmac.New(sha256.New, k.k)
	h.Write(value)
	return h.Sum(nil)
}

// Sign returns the header value for value: "v1=" and the hex HMAC.
func (k *Key) Sign(value []byte) string { return version + hex.EncodeToString(k.mac(value)) }

// AddTo appends the signature header of msg.Value to msg's headers; with
// a nil Key it does nothing.
func (k *Key) AddTo(msg *kafka.Message) {
	if k == nil {
		return
	}
	msg.Headers = append(msg.Headers, kafka.Header{Key: Header, Value: []byte(k.Sign(msg.Value))})
}

// Verify checks msg's signature: nil when it matches (or the Key is nil),
// ErrUnsigned without the header, ErrBadSignature when it does not match
// or is not one v1 signature. The comparison is constant-time.
func (k *Key) Verify(msg kafka.Message) error {
	if k == nil {
		return nil
	}
	var sig []byte
	n := 0
	for _, h := range msg.Headers {
		if h.Key == Header {
			sig, n = h.Value, n+1
		}
	}
	if n == 0 {
		return ErrUnsigned
	}
	if n > 1 {
		return ErrBadSignature
	}
	hexSig, ok := strings.CutPrefix(string(sig), version)
	if !ok {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || !hmac.Equal(got, k.mac(msg.Value)) {
		return ErrBadSignature
	}
	return nil
}

// Reason is the dead-letter reason of a Verify error.
func Reason(err error) schemas.Reason {
	if errors.Is(err, ErrUnsigned) {
		return ReasonUnsigned
	}
	return ReasonBadSignature
}
