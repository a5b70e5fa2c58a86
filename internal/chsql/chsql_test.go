package chsql

import (
	"testing"
	"time"
)

func TestQuoting(t *testing.T) {
	tests := []struct{ name, got, want string }{
		{"plain string", String("churn"), `'churn'`},
		{"quote", String("it's"), `'it\'s'`},
		{"backslash", String(`a\b`), `'a\\b'`},
		{"backslash before quote", String(`\'`), `'\\\''`},
		{"empty", String(""), `''`},
		{"identifier", Ident("driftwatch"), "`driftwatch`"},
		{"backtick", Ident("a`b"), "`a\\`b`"},
		{"identifier backslash", Ident(`a\b`), "`a\\\\b`"},
		{"time", Time(time.Date(2026, 12, 3, 17, 4, 5, 123_900_000, time.FixedZone("x", 3600))), "toDateTime64('2026-12-03 16:04:05.123', 3, 'UTC')"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %s, want %s", tt.got, tt.want)
			}
		})
	}
}

// TestQuoteIdent moved whole from internal/chclient with the function.
func TestQuoteIdent(t *testing.T) {
	if got := Ident("we`ird\\"); got != "`we\\`ird\\\\`" {
		t.Errorf("QuoteIdent = %s", got)
	}
}
