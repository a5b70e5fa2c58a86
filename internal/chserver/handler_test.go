package chserver

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"

	"github.com/driftwatch/driftwatch/internal/chdb"
)

// fakeEngine records what the server runs and answers from a table.
type fakeEngine struct {
	mu       sync.Mutex
	queries  []string
	formats  []string
	inserts  []string // "head|format|data"
	answer   func(sql string) (*chdb.Result, error)
	released []bool
}

func (f *fakeEngine) Acquire(context.Context) (Session, error) { return fakeSession{f}, nil }
func (f *fakeEngine) Release(_ Session, broken bool) {
	f.mu.Lock()
	f.released = append(f.released, broken)
	f.mu.Unlock()
}
func (f *fakeEngine) Close() error { return nil }

type fakeSession struct{ f *fakeEngine }

func (s fakeSession) Query(sql, format string, _ map[string]string) (*chdb.Result, error) {
	s.f.mu.Lock()
	s.f.queries = append(s.f.queries, sql)
	s.f.formats = append(s.f.formats, format)
	s.f.mu.Unlock()
	if s.f.answer != nil {
		return s.f.answer(sql)
	}
	return &chdb.Result{}, nil
}

func (s fakeSession) StreamInsert(head, format string) (Inserter, error) {
	return &fakeInserter{f: s.f, head: head, format: format}, nil
}

type fakeInserter struct {
	f            *fakeEngine
	head, format string
	data         bytes.Buffer
}

func (i *fakeInserter) Write(p []byte) (int, error) { return i.data.Write(p) }
func (i *fakeInserter) Cancel()                     {}
func (i *fakeInserter) Done() (*chdb.Result, error) {
	i.f.mu.Lock()
	i.f.inserts = append(i.f.inserts, i.head+"|"+i.format+"|"+i.data.String())
	i.f.mu.Unlock()
	return &chdb.Result{RowsWritten: 1}, nil
}

func newTestServer(t *testing.T, f *fakeEngine, mod func(*Options)) http.Handler {
	t.Helper()
	opts := Options{Addr: "127.0.0.1:0", User: "default", Engine: f, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s.Handler()
}

func do(h http.Handler, method, target string, body io.Reader, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRequestRouting(t *testing.T) {
	for _, tc := range []struct {
		name        string
		method, url string
		body        string
		hdr         map[string]string
		status      int
		wantQuery   string // last statement the engine ran
		wantInsert  string
		wantBody    string
		wantExcCode string
	}{
		{name: "ping", method: "GET", url: "/ping", status: 200, wantBody: "Ok.\n"},
		{name: "root GET", method: "GET", url: "/", status: 200, wantBody: "Ok.\n"},
		{name: "query param", method: "POST", url: "/?query=SELECT+1", status: 200, wantQuery: "SELECT 1"},
		{name: "GET is readonly in the engine too", method: "GET", url: "/?query=SELECT+1&readonly=0", status: 200, wantQuery: "SET readonly = DEFAULT"},
		{name: "file setting in the URL", method: "POST", url: "/?query=SELECT+1&format_schema=%2Fetc%2Fx.proto", status: 403, wantExcCode: "497"},
		{name: "GET write", method: "GET", url: "/?query=" + url.QueryEscape("INSERT INTO t VALUES (1)"), status: 403, wantExcCode: "164"},
		{name: "foreign origin", method: "POST", url: "/?query=SELECT+1", hdr: map[string]string{"Origin": "https://evil.example"}, status: 403, wantExcCode: "497"},
		{name: "param plus body", method: "POST", url: "/?query=SELECT", body: " 1", status: 200, wantQuery: "SELECT 1"},
		{name: "body only", method: "POST", url: "/", body: "SELECT 2", status: 200, wantQuery: "SELECT 2"},
		{name: "insert param, data body", method: "POST", url: "/?query=" + url.QueryEscape("INSERT INTO t (a) FORMAT CSV"), body: "1\n2\n", status: 200, wantInsert: "INSERT INTO t (a)|CSV|1\n2\n"},
		{name: "insert in body", method: "POST", url: "/", body: "INSERT INTO t FORMAT JSONEachRow\n{\"a\":1}", status: 200, wantInsert: "INSERT INTO t|JSONEachRow|{\"a\":1}"},
		{name: "insert split", method: "POST", url: "/?query=" + url.QueryEscape("INSERT INTO t "), body: "FORMAT TSV\n1\n", status: 200, wantInsert: "INSERT INTO t|TSV|1\n"},
		{name: "insert values", method: "POST", url: "/?query=" + url.QueryEscape("INSERT INTO t VALUES"), body: "(1)", status: 200, wantInsert: "INSERT INTO t|Values|(1)"},
		{name: "insert select", method: "POST", url: "/", body: "INSERT INTO t SELECT 1", status: 200, wantQuery: "INSERT INTO t SELECT 1"},
		{name: "gzip body", method: "POST", url: "/?query=" + url.QueryEscape("INSERT INTO t FORMAT CSV"), body: gz("5\n"), hdr: map[string]string{"Content-Encoding": "gzip"}, status: 200, wantInsert: "INSERT INTO t|CSV|5\n"},
		{name: "bad encoding", method: "POST", url: "/?query=SELECT+1", hdr: map[string]string{"Content-Encoding": "snappy2"}, status: 400, wantExcCode: "438"},
		{name: "wrong password", method: "GET", url: "/?query=SELECT+1&password=x", status: 401, wantExcCode: "516"},
		{name: "wrong user header", method: "GET", url: "/?query=SELECT+1", hdr: map[string]string{"X-ClickHouse-User": "bob"}, status: 401, wantExcCode: "516"},
		{name: "multi statement", method: "GET", url: "/?query=" + url.QueryEscape("SELECT 1; DROP TABLE x"), status: 500, wantExcCode: "62"},
		{name: "set is per request", method: "GET", url: "/?query=" + url.QueryEscape("SET max_threads = 1"), status: 200},
		{name: "unknown path", method: "GET", url: "/nope", status: 404},
		{name: "bad revision", method: "GET", url: "/?query=SELECT+1&client_protocol_version=x", status: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeEngine{}
			h := newTestServer(t, f, nil)
			rec := do(h, tc.method, tc.url, strings.NewReader(tc.body), tc.hdr)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %q", rec.Code, tc.status, rec.Body.String())
			}
			if tc.wantBody != "" && rec.Body.String() != tc.wantBody {
				t.Errorf("body %q, want %q", rec.Body.String(), tc.wantBody)
			}
			if tc.wantExcCode != "" && rec.Header().Get("X-ClickHouse-Exception-Code") != tc.wantExcCode {
				t.Errorf("exception code %q, want %q", rec.Header().Get("X-ClickHouse-Exception-Code"), tc.wantExcCode)
			}
			if tc.wantQuery != "" {
				if len(f.queries) == 0 || f.queries[len(f.queries)-1] != tc.wantQuery {
					t.Errorf("engine ran %q, want last %q", f.queries, tc.wantQuery)
				}
			}
			if tc.wantInsert != "" && (len(f.inserts) != 1 || f.inserts[0] != tc.wantInsert) {
				t.Errorf("inserts %q, want %q", f.inserts, tc.wantInsert)
			}
		})
	}
}

func gz(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

func TestSettingsAppliedAndReset(t *testing.T) {
	f := &fakeEngine{}
	h := newTestServer(t, f, nil)
	rec := do(h, "POST", "/?query=SELECT+1&max_threads=1&database=db1&default_format=JSON&client_protocol_version=54460&compress=0", nil, nil)
	if rec.Code != 200 {
		t.Fatalf("status %d %s", rec.Code, rec.Body)
	}
	want := []string{"USE `db1`; SET max_threads = '1'", "SELECT 1", "SET max_threads = DEFAULT"}
	if strings.Join(f.queries, "\n") != strings.Join(want, "\n") {
		t.Fatalf("engine ran %q, want %q", f.queries, want)
	}
	if f.formats[1] != "JSON" || rec.Header().Get("X-ClickHouse-Format") != "JSON" {
		t.Fatalf("format %q header %q", f.formats[1], rec.Header().Get("X-ClickHouse-Format"))
	}
	// Same session, same database: no second USE.
	f.queries = nil
	do(h, "POST", "/?query=SELECT+2&database=db1", nil, nil)
	if len(f.queries) != 1 {
		t.Fatalf("engine ran %q, want only the query", f.queries)
	}
}

func TestEngineErrorBecomes500WithCode(t *testing.T) {
	f := &fakeEngine{answer: func(string) (*chdb.Result, error) {
		return nil, &chdb.Error{Code: 60, Message: "Code: 60. DB::Exception: Unknown table t. (UNKNOWN_TABLE)"}
	}}
	rec := do(newTestServer(t, f, nil), "GET", "/?query=SELECT+*+FROM+t", nil, nil)
	if rec.Code != 500 || rec.Header().Get("X-ClickHouse-Exception-Code") != "60" || !strings.HasPrefix(rec.Body.String(), "Code: 60.") {
		t.Fatalf("got %d %q %q", rec.Code, rec.Header(), rec.Body)
	}
}

func TestPanicIsRecovered(t *testing.T) {
	f := &fakeEngine{answer: func(string) (*chdb.Result, error) { panic("boom") }}
	rec := do(newTestServer(t, f, nil), "GET", "/?query=SELECT+1", nil, nil)
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "boom") {
		t.Fatalf("got %d %q", rec.Code, rec.Body)
	}
}

func TestBodyLimit(t *testing.T) {
	f := &fakeEngine{}
	h := newTestServer(t, f, func(o *Options) { o.MaxBodyBytes = 100 })
	q := "/?query=" + url.QueryEscape("INSERT INTO t FORMAT CSV")
	rec := do(h, "POST", q, strings.NewReader(strings.Repeat("1\n", 100)), nil)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413; %s", rec.Code, rec.Body)
	}
	// Without Content-Length the limit is found while streaming.
	req := httptest.NewRequest("POST", q, io.MultiReader(strings.NewReader(strings.Repeat("1\n", 100))))
	req.ContentLength = -1
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("streamed: status %d, want 413; %s", rec.Code, rec.Body)
	}
	if len(f.inserts) != 0 {
		t.Fatalf("insert committed despite the limit: %q", f.inserts)
	}
}

func TestRevisionRewrite(t *testing.T) {
	f := &fakeEngine{}
	h := newTestServer(t, f, nil)
	q := "SELECT displayName(), version(), revision(), timezone()"
	do(h, "POST", "/?client_protocol_version=54460&default_format=Native", strings.NewReader(q), nil)
	if got := f.queries[len(f.queries)-1]; got != "SELECT displayName(), version(), toUInt32(54460), timezone()" {
		t.Fatalf("engine ran %q", got)
	}
	f.queries = nil
	do(h, "POST", "/", strings.NewReader(q), nil)
	if got := f.queries[len(f.queries)-1]; got != q {
		t.Fatalf("without client_protocol_version the engine ran %q", got)
	}
}

func TestParseStatement(t *testing.T) {
	for _, tc := range []struct {
		in     string
		kind   stmtKind
		format string
		head   string
		data   string
		multi  bool
	}{
		{in: "SELECT 1", kind: kindSelect},
		{in: "  -- c\n/* x */ select 1 FORMAT JSON", kind: kindSelect, format: "JSON"},
		{in: "SELECT format('{}', 'FORMAT x') FORMAT CSV;", kind: kindSelect, format: "CSV"},
		{in: "SELECT 'a;b'", kind: kindSelect},
		{in: "SELECT 1; SELECT 2", kind: kindSelect, multi: true},
		{in: "INSERT INTO t (a, b) FORMAT Native", kind: kindInsert, format: "Native", head: "INSERT INTO t (a, b)"},
		{in: "insert into `t;x` format CSV\n1,2", kind: kindInsert, format: "CSV", head: "insert into `t;x`", data: "1,2"},
		{in: "INSERT INTO t SETTINGS async_insert=1 FORMAT TSV 1\t2", kind: kindInsert, format: "TSV", head: "INSERT INTO t SETTINGS async_insert=1", data: "1\t2"},
		{in: "INSERT INTO t VALUES (1, 'FORMAT x')", kind: kindInsert, format: "Values", head: "INSERT INTO t", data: " (1, 'FORMAT x')"},
		{in: "INSERT INTO t SELECT * FROM u", kind: kindInsertSelect},
		{in: "INSERT INTO t WITH 1 AS x SELECT x", kind: kindInsertSelect},
		{in: "CREATE TABLE t (a Int8) ENGINE = Memory", kind: kindOther},
		{in: "SET a = 1", kind: kindSessionOnly},
	} {
		st := parseStatement(tc.in)
		if st.kind != tc.kind || st.format != tc.format || st.insertHead != tc.head || tc.in[st.dataStart:] != tc.data || st.multi != tc.multi {
			t.Errorf("parseStatement(%q) = kind %d format %q head %q data %q multi %v; want %d %q %q %q %v",
				tc.in, st.kind, st.format, st.insertHead, tc.in[st.dataStart:], st.multi, tc.kind, tc.format, tc.head, tc.data, tc.multi)
		}
	}
}

// nativeRev0 encodes a block as libchdb does (revision 0).
func nativeBlocks(t testing.TB, rev uint64, blocks int) []byte {
	t.Helper()
	buf := &chproto.Buffer{}
	for b := 0; b < blocks; b++ {
		block := &proto.Block{}
		for _, c := range []struct{ name, typ string }{
			{"s", "String"}, {"lc", "LowCardinality(String)"}, {"n", "Nullable(Float64)"},
			{"a", "Array(Float64)"}, {"m", "Map(String, Float64)"}, {"u", "UInt64"},
		} {
			if err := block.AddColumn(c.name, column.Type(c.typ)); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 3; i++ {
			v := float64(i)
			if err := block.Append("x"+strings.Repeat("é", i), "lc", &v, []float64{v, 1}, map[string]float64{"k": v}, uint64(b*10+i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := block.Encode(buf, rev); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Buf
}

func TestTranscodeNative(t *testing.T) {
	const rev = 54460
	in := nativeBlocks(t, 0, 2)
	got, err := transcodeNative(in, rev)
	if err != nil {
		t.Fatal(err)
	}
	// Reference: clickhouse-go encoding the same blocks for rev directly.
	if want := nativeBlocks(t, rev, 2); !bytes.Equal(got, want) {
		t.Fatalf("transcoded %d bytes differ from clickhouse-go's own %d-byte encoding", len(got), len(want))
	}
	if out, err := transcodeNative(nil, rev); err != nil || len(out) != 0 {
		t.Fatalf("empty input: %q, %v", out, err)
	}
	if _, err := transcodeNative(in[:len(in)-3], rev); err == nil {
		t.Fatal("truncated input transcoded without error")
	}
	if out, err := transcodeNative(in, 0); err != nil || !bytes.Equal(out, in) {
		t.Fatal("revision 0 must pass through")
	}
}

func TestValidate(t *testing.T) {
	err := Options{MaxBodyBytes: -1}.Validate()
	for _, want := range []string{"Addr", "LibPath", "User", "MaxBodyBytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
	if !errors.Is(nil, nil) {
		t.Fatal("unreachable")
	}
}
