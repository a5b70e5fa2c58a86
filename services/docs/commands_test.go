package docs

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/driftwatch/driftwatch/internal/testdb"
)

// block is a fenced code block of a page.
type block struct {
	page, lang string
	line       int
	text       string
}

// blocks returns the fenced code blocks of README.md and docs/*.md.
func blocks(t *testing.T) []block {
	t.Helper()
	dir := root(t)
	pages, err := filepath.Glob(filepath.Join(dir, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append([]string{filepath.Join(dir, "README.md")}, pages...)
	var out []block
	for _, p := range pages {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		var cur *block
		for i, line := range strings.Split(string(data), "\n") {
			trimmed := strings.TrimSpace(line)
			if !strings.HasPrefix(trimmed, "```") {
				if cur != nil {
					cur.text += line + "\n"
				}
				continue
			}
			if cur == nil {
				cur = &block{page: rel, lang: strings.TrimPrefix(trimmed, "```"), line: i + 1}
				continue
			}
			out = append(out, *cur)
			cur = nil
		}
	}
	return out
}

// commands splits a shell block into its commands: comments dropped,
// continued lines joined.
func commands(text string) []string {
	var out []string
	cur := ""
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "" {
			continue
		}
		if strings.HasSuffix(strings.TrimRight(line, " "), `\`) {
			cur += strings.TrimSuffix(strings.TrimRight(line, " "), `\`) + " "
			continue
		}
		out = append(out, strings.TrimSpace(cur+line))
		cur = ""
	}
	return out
}

// foreground matches a command that starts something that runs until it is
// stopped: make run, a service, the embedded ClickHouse.
var foreground = regexp.MustCompile(`^(?:[A-Z_]+=\S+\s+)*(?:make run|scripts/run\.sh|(?:\./)?bin/(?:ingest|monitor|trainer|clickhouse-embedded))\b`)

// TestCommandsCanBePasted: no shell block of the README or docs/ starts a
// server in the foreground and then lists commands that would never run
// (they belong in a second block, or the server gets a trailing &).
func TestCommandsCanBePasted(t *testing.T) {
	for _, b := range blocks(t) {
		if b.lang != "sh" && b.lang != "bash" && b.lang != "console" {
			continue
		}
		cmds := commands(b.text)
		for i, c := range cmds {
			code := strings.TrimSpace(strings.SplitN(c, " #", 2)[0])
			if !foreground.MatchString(code) || strings.HasSuffix(code, "&") || strings.Contains(code, "-check-config") || strings.Contains(code, "-help") {
				continue
			}
			if i < len(cmds)-1 {
				t.Errorf("%s:%d: %q runs in the foreground, so %q after it never runs when pasted: end the block there, or add &", b.page, b.line, code, cmds[i+1])
			}
		}
	}
}

// tableRef finds the tables a query names: FROM, JOIN, INTO, TABLE and
// driftwatch.<table>, in SQL blocks and in URL-encoded ?query= strings.
var tableRef = regexp.MustCompile(`(?i)(?:\b(?:FROM|JOIN|INTO|TABLE)\s+(?:driftwatch\.)?|\bdriftwatch\.)([a-z_][a-z0-9_]*)\b`)

// TestDocsQueryRealTables: every table a query in the README or docs/
// names exists after the migrations (system.tables of the real ClickHouse).
func TestDocsQueryRealTables(t *testing.T) {
	conn, db := testdb.Open(t, "docsquery")
	ctx := clickhouse.Context(context.Background(), clickhouse.WithParameters(clickhouse.Parameters{"db": db}))
	rows, err := conn.Query(ctx, `SELECT name FROM system.tables WHERE database = {db:String}`)
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables[n] = true
	}
	rows.Close()
	// Names that are not driftwatch tables: ClickHouse's own, and words
	// after FROM in prose-like SQL comments.
	other := map[string]bool{"system": true, "numbers": true, "t": true, "s": true, "k": true, "select": true, "format": true, "where": true}
	for _, b := range blocks(t) {
		text := b.text
		if u, err := url.QueryUnescape(text); err == nil {
			text = u
		}
		text = strings.ReplaceAll(text, "+", " ")
		if b.lang != "sql" && !strings.Contains(text, "query=") && !strings.Contains(text, "SELECT ") {
			continue
		}
		for _, line := range strings.Split(text, "\n") {
			if b.lang == "sql" && strings.HasPrefix(strings.TrimSpace(line), "--") {
				continue
			}
			for _, m := range tableRef.FindAllStringSubmatch(line, -1) {
				name := strings.ToLower(m[1])
				if !tables[name] && !other[name] {
					t.Errorf("%s:%d: a query names table %s, which the migrations do not create", b.page, b.line, name)
				}
			}
		}
	}
}
