package ingest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/schemas"
)

func TestTooLarge(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{kafka.MessageSizeTooLarge, true},
		{fmt.Errorf("write: %w", kafka.MessageSizeTooLarge), true},
		{kafka.MessageTooLargeError{}, true},
		{kafka.WriteErrors{nil, kafka.MessageSizeTooLarge}, true},
		{kafka.WriteErrors{nil, kafka.LeaderNotAvailable}, false},
		{kafka.LeaderNotAvailable, false},
		{nil, false},
	} {
		if got := tooLarge(tt.err); got != tt.want {
			t.Errorf("tooLarge(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestShrinkDeadLetters(t *testing.T) {
	big := strings.Repeat("x", deadLetterTruncateBytes+5)
	msgs := []kafka.Message{{Value: []byte("small")}, {Value: []byte(big), Headers: []kafka.Header{{Key: schemas.HeaderReason, Value: []byte("too_large")}}}}
	if !shrinkDeadLetters(msgs) {
		t.Fatal("nothing shrunk")
	}
	if string(msgs[0].Value) != "small" || len(msgs[0].Headers) != 0 {
		t.Errorf("small message changed: %+v", msgs[0])
	}
	if len(msgs[1].Value) != deadLetterTruncateBytes || header(msgs[1], schemas.HeaderValueTruncated) != fmt.Sprint(len(big)) || header(msgs[1], schemas.HeaderReason) != "too_large" {
		t.Errorf("big message: %d bytes, headers %v", len(msgs[1].Value), msgs[1].Headers)
	}
	if shrinkDeadLetters(msgs) {
		t.Error("second shrink changed something")
	}
}
