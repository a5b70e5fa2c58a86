// Package chsql is the one way driftwatch writes a value into ClickHouse
// SQL text: a string literal, an identifier, a timestamp. Values that come
// from outside (model ids, feature names, database names) pass through
// these and nowhere else, so the escaping rules live in one place.
package chsql

import (
	"strings"
	"time"
)

var (
	stringEscaper = strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	identEscaper  = strings.NewReplacer(`\`, `\\`, "`", "\\`")
)

// String returns s as a ClickHouse string literal: 'it\'s'.
func String(s string) string { return "'" + stringEscaper.Replace(s) + "'" }

// Ident returns name as a ClickHouse identifier quoted with backticks, for
// database, table and column names.
func Ident(name string) string { return "`" + identEscaper.Replace(name) + "`" }

// Time returns t as a DateTime64(3, 'UTC') literal, to the millisecond.
func Time(t time.Time) string {
	return "toDateTime64('" + t.UTC().Format("2006-01-02 15:04:05.000") + "', 3, 'UTC')"
}
