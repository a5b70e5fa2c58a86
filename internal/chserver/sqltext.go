package chserver

import (
	"strings"
)

// token is one lexical token of a ClickHouse statement: enough of the
// grammar to find the statement kind, an explicit FORMAT clause and where
// the inline data of an INSERT begins, without a full SQL parser.
type token struct {
	start, end int  // byte offsets in the text
	word       bool // bare identifier or keyword
	quoted     bool // '...', "..." or `...`
}

// lexer walks a statement's tokens, skipping whitespace and comments.
type lexer struct {
	s   string
	pos int
}

// next returns the next token; ok is false at the end of the text.
func (l *lexer) next() (t token, ok bool) {
	s := l.s
	for l.pos < len(s) {
		c := s[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.pos++
		case c == '-' && l.pos+1 < len(s) && s[l.pos+1] == '-', c == '#':
			for l.pos < len(s) && s[l.pos] != '\n' {
				l.pos++
			}
		case c == '/' && l.pos+1 < len(s) && s[l.pos+1] == '*':
			end := strings.Index(s[l.pos+2:], "*/")
			if end < 0 {
				l.pos = len(s)
			} else {
				l.pos += 2 + end + 2
			}
		default:
			start := l.pos
			switch {
			case c == '\'' || c == '"' || c == '`':
				l.pos++
				for l.pos < len(s) {
					if s[l.pos] == '\\' {
						l.pos += 2
						continue
					}
					if s[l.pos] == c {
						// A doubled quote is an escaped quote.
						if l.pos+1 < len(s) && s[l.pos+1] == c {
							l.pos += 2
							continue
						}
						l.pos++
						break
					}
					l.pos++
				}
				if l.pos > len(s) {
					l.pos = len(s)
				}
				return token{start: start, end: l.pos, quoted: true}, true
			case isWordByte(c):
				for l.pos < len(s) && isWordByte(s[l.pos]) {
					l.pos++
				}
				return token{start: start, end: l.pos, word: true}, true
			default:
				l.pos++
				return token{start: start, end: l.pos}, true
			}
		}
	}
	return token{}, false
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// stmtKind is what a statement does, as far as the HTTP layer cares.
type stmtKind int

const (
	kindOther  stmtKind = iota // DDL and anything else: run as is
	kindSelect                 // produces rows in an output format
	kindInsert                 // INSERT ... FORMAT/VALUES: data follows
	kindInsertSelect
	kindSessionOnly // SET / USE: per request, so a no-op over HTTP
)

// statement is what parseStatement learned about a query text.
type statement struct {
	kind stmtKind
	// format is the explicit FORMAT clause's format name ("" if none).
	format string
	// insertHead is an INSERT up to (not including) its FORMAT or VALUES
	// keyword, e.g. "INSERT INTO t (a, b)".
	insertHead string
	// dataStart is the offset in the text where an INSERT's inline data
	// begins (len(text) when there is none).
	dataStart int
	// revisionCalls are the [start,end) ranges of revision() calls.
	revisionCalls [][2]int
	// multi is set when more than one statement follows another ';'.
	multi bool
}

func (l *lexer) text(t token) string { return l.s[t.start:t.end] }

// parseStatement classifies text, the query part of a request.
func parseStatement(text string) statement {
	st := statement{dataStart: len(text)}
	lx := &lexer{s: text}
	var toks []token
	for {
		t, ok := lx.next()
		if !ok {
			break
		}
		toks = append(toks, t)
		if len(toks) == 1 && t.word && strings.EqualFold(lx.text(t), "INSERT") {
			return parseInsert(text, lx, st)
		}
	}
	if len(toks) == 0 {
		return st
	}
	first := strings.ToUpper(lx.text(toks[0]))
	switch first {
	case "SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS", "CHECK", "(":
		st.kind = kindSelect
		if first == "WITH" && withInsert(lx, toks) {
			// WITH x AS (...) INSERT INTO t SELECT ... writes.
			st.kind = kindInsertSelect
		}
	case "SET", "USE":
		st.kind = kindSessionOnly
	}
	depth := 0
	for i, t := range toks {
		w := lx.text(t)
		switch {
		case w == ";":
			if i+1 < len(toks) {
				st.multi = true
			}
		case w == "(":
			depth++
		case w == ")":
			depth--
		case t.word && depth == 0 && strings.EqualFold(w, "FORMAT") && i+1 < len(toks) && toks[i+1].word:
			st.format = lx.text(toks[i+1])
		case t.word && strings.EqualFold(w, "revision") && i+2 < len(toks) &&
			lx.text(toks[i+1]) == "(" && lx.text(toks[i+2]) == ")" &&
			(i == 0 || lx.text(toks[i-1]) != "."):
			st.revisionCalls = append(st.revisionCalls, [2]int{t.start, toks[i+2].end})
		}
	}
	return st
}

// parseInsert continues parseStatement after an INSERT keyword.
func parseInsert(text string, lx *lexer, st statement) statement {
	st.kind = kindInsert
	depth := 0
	for {
		t, ok := lx.next()
		if !ok {
			// INSERT INTO t with no FORMAT: the data, if any, is in the
			// body, in Values like a bare ClickHouse INSERT.
			st.insertHead = strings.TrimSpace(text)
			st.format = ""
			return st
		}
		w := lx.text(t)
		switch {
		case w == "(":
			depth++
		case w == ")":
			depth--
		case !t.word || depth != 0:
		case strings.EqualFold(w, "SELECT") || strings.EqualFold(w, "WITH"):
			st.kind = kindInsertSelect
			return st
		case strings.EqualFold(w, "VALUES"):
			st.insertHead = strings.TrimSpace(text[:t.start])
			st.format = "Values"
			st.dataStart = t.end
			return st
		case strings.EqualFold(w, "FORMAT"):
			f, ok := lx.next()
			if !ok || !f.word {
				st.kind = kindOther // let the engine report the syntax error
				return st
			}
			st.insertHead = strings.TrimSpace(text[:t.start])
			st.format = lx.text(f)
			st.dataStart = skipDataSeparator(text, f.end)
			return st
		}
	}
}

// skipDataSeparator skips the blanks between a FORMAT name and inline
// data, up to and including the first newline, as ClickHouse does.
func skipDataSeparator(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\r':
			i++
		case '\n':
			return i + 1
		default:
			return i
		}
	}
	return i
}

// withInsert reports whether a statement that starts with WITH is an
// INSERT: an INSERT keyword outside parentheses.
func withInsert(lx *lexer, toks []token) bool {
	depth := 0
	for _, t := range toks {
		switch w := lx.text(t); {
		case w == "(":
			depth++
		case w == ")":
			depth--
		case depth == 0 && t.word && strings.EqualFold(w, "INSERT"):
			return true
		}
	}
	return false
}
