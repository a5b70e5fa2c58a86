// Package analyst holds no code: its test runs the example analyst queries
// printed in docs/tables.md against the real ClickHouse
// engine and a small dataset with known answers, so the documentation
// cannot drift from the schema.
package analyst
