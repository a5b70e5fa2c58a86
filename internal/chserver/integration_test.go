package chserver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/google/uuid"
	"github.com/paulmach/orb"

	"github.com/driftwatch/driftwatch/internal/testenv"
)

// chTarget is where the integration tests send requests.
type chTarget struct {
	base     *url.URL // http://host:port
	database string
}

func target(t testing.TB) chTarget {
	t.Helper()
	raw := testenv.ClickHouseURL(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse DRIFTWATCH_CLICKHOUSE_URL: %v", err)
	}
	db := strings.Trim(u.Path, "/")
	if db == "" {
		db = "default"
	}
	return chTarget{base: &url.URL{Scheme: "http", Host: u.Host, User: u.User}, database: db}
}

func (c chTarget) open(t testing.TB, mod func(*clickhouse.Options)) driver.Conn {
	t.Helper()
	opts := &clickhouse.Options{
		Protocol:    clickhouse.HTTP,
		Addr:        []string{c.base.Host},
		Auth:        clickhouse.Auth{Database: c.database, Username: "default"},
		DialTimeout: 10 * time.Second,
	}
	if c.base.User != nil {
		opts.Auth.Username = c.base.User.Username()
		opts.Auth.Password, _ = c.base.User.Password()
	}
	if mod != nil {
		mod(opts)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatalf("open clickhouse-go over HTTP: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// post sends a raw HTTP request the way curl would.
func (c chTarget) post(t testing.TB, params url.Values, body io.Reader, header http.Header) (*http.Response, string) {
	t.Helper()
	u := *c.base
	if params == nil {
		params = url.Values{}
	}
	if !params.Has("database") {
		params.Set("database", c.database)
	}
	u.RawQuery = params.Encode()
	req, err := http.NewRequest(http.MethodPost, u.String(), body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u.Redacted(), err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func uniqueTable(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

func dropLater(t *testing.T, conn driver.Conn, table string) {
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+table) })
}

type typedRow struct {
	ID   uint64
	S    string
	LC   string
	F32  float32
	F64  float64
	I64  int64
	Flag bool
	U    uuid.UUID
	TS   time.Time
	NF   *float64
	Arr  []float64
	MNum map[string]float64
	MStr map[string]string
}

func makeRow(i int) typedRow {
	r := typedRow{
		ID:   uint64(i),
		S:    fmt.Sprintf("row %d ünïcødé 🚀 %s", i, strings.Repeat("x", i%300)),
		LC:   []string{"us", "eu", "apac", ""}[i%4],
		F32:  float32(i) * 0.5,
		F64:  float64(i)*1.25 - 1e6,
		I64:  int64(i)*-7919 + math.MinInt64/2,
		Flag: i%3 == 0,
		U:    uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprint(i))),
		TS:   time.UnixMilli(1_700_000_000_000 + int64(i)*37).UTC(),
		Arr:  []float64{float64(i), -float64(i), 0.1},
		MNum: map[string]float64{"age": float64(i % 90), "score": float64(i) / 3},
		MStr: map[string]string{"country": []string{"de", "fr"}[i%2]},
	}
	if i%5 != 0 {
		v := float64(i) / 7
		r.NF = &v
	}
	if i%11 == 0 {
		r.Arr = []float64{}
		r.MNum = map[string]float64{}
	}
	return r
}

// TestTypesRoundTrip inserts 100,000 rows of every column type driftwatch
// uses through clickhouse-go over HTTP and reads each value back.
func TestTypesRoundTrip(t *testing.T) {
	c := target(t)
	conn := c.open(t, nil)
	ctx := context.Background()
	table := uniqueTable("types")
	dropLater(t, conn, table)
	err := conn.Exec(ctx, `CREATE TABLE `+table+` (
		id UInt64, s String, lc LowCardinality(String), f32 Float32, f64 Float64, i64 Int64,
		flag Bool, u UUID, ts DateTime64(3, 'UTC'), nf Nullable(Float64), arr Array(Float64),
		mnum Map(String, Float64), mstr Map(String, String)
	) ENGINE = MergeTree ORDER BY id`)
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	const n = 100_000
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
	if err != nil {
		t.Fatalf("prepare batch: %v", err)
	}
	for i := 0; i < n; i++ {
		r := makeRow(i)
		if err := batch.Append(r.ID, r.S, r.LC, r.F32, r.F64, r.I64, r.Flag, r.U, r.TS, r.NF, r.Arr, r.MNum, r.MStr); err != nil {
			t.Fatalf("append row %d: %v", i, err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatalf("send batch: %v", err)
	}
	rows, err := conn.Query(ctx, "SELECT id, s, lc, f32, f64, i64, flag, u, ts, nf, arr, mnum, mstr FROM "+table+" ORDER BY id")
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var got typedRow
		if err := rows.Scan(&got.ID, &got.S, &got.LC, &got.F32, &got.F64, &got.I64, &got.Flag, &got.U, &got.TS, &got.NF, &got.Arr, &got.MNum, &got.MStr); err != nil {
			t.Fatalf("scan row %d: %v", i, err)
		}
		got.TS = got.TS.UTC()
		want := makeRow(i)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("row %d:\n got %+v\nwant %+v", i, got, want)
		}
		i++
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read rows: %v", err)
	}
	if i != n {
		t.Fatalf("read %d rows, want %d", i, n)
	}
}

// TestErrorsCarryCode checks that ClickHouse errors reach clickhouse-go as
// *clickhouse.Exception with ClickHouse's code.
func TestErrorsCarryCode(t *testing.T) {
	c := target(t)
	conn := c.open(t, nil)
	for _, tc := range []struct {
		name, sql string
		code      int32
	}{
		{"syntax error", "SELEC 1", 62},
		{"unknown table", "SELECT * FROM no_such_table_" + uniqueTable("x"), 60},
		{"unknown function", "SELECT no_such_function(1)", 46},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := conn.Query(context.Background(), tc.sql)
			if err == nil {
				rows.Close()
				t.Fatal("query succeeded, want an error")
			}
			var ex *clickhouse.Exception
			if !errors.As(err, &ex) {
				t.Fatalf("error %v (%T) is not a *clickhouse.Exception", err, err)
			}
			if ex.Code != tc.code {
				t.Fatalf("code %d, want %d (%v)", ex.Code, tc.code, err)
			}
			if err := conn.Exec(context.Background(), tc.sql); !errors.As(err, &ex) || ex.Code != tc.code {
				t.Fatalf("Exec: %v, want code %d", err, tc.code)
			}
		})
	}
}

// TestConcurrentInserts runs 8 batch inserts at once and counts the rows.
func TestConcurrentInserts(t *testing.T) {
	c := target(t)
	conn := c.open(t, nil)
	ctx := context.Background()
	table := uniqueTable("conc")
	dropLater(t, conn, table)
	if err := conn.Exec(ctx, "CREATE TABLE "+table+" (w UInt8, i UInt32, v Float64, m Map(String, Float64)) ENGINE = MergeTree ORDER BY (w, i)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	const workers, perWorker = 8, 20_000
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for part := 0; part < 4; part++ {
				b, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
				if err != nil {
					errs <- err
					return
				}
				for i := part * perWorker / 4; i < (part+1)*perWorker/4; i++ {
					if err := b.Append(uint8(w), uint32(i), float64(i), map[string]float64{"a": 1}); err != nil {
						errs <- err
						return
					}
				}
				if err := b.Send(); err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var count, distinct uint64
	if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(w, i) FROM "+table).Scan(&count, &distinct); err != nil {
		t.Fatalf("count: %v", err)
	}
	if count != workers*perWorker || distinct != workers*perWorker {
		t.Fatalf("count %d distinct %d, want %d", count, distinct, workers*perWorker)
	}
}

// TestSettingsAndDatabase checks that settings passed by clickhouse-go
// apply to their own query only, and that the database parameter works.
func TestSettingsAndDatabase(t *testing.T) {
	c := target(t)
	conn := c.open(t, nil)
	ctx := context.Background()
	var before, during, after string
	if err := conn.QueryRow(ctx, "SELECT getSetting('max_threads')::String").Scan(&before); err != nil {
		t.Fatal(err)
	}
	sctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_threads": 1}))
	if err := conn.QueryRow(sctx, "SELECT getSetting('max_threads')::String").Scan(&during); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT getSetting('max_threads')::String").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if during != "1" || after != before {
		t.Fatalf("max_threads before %s, with setting %s (want 1), after %s (want %s)", before, during, after, before)
	}
	var param int64
	pctx := clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{"x": "41"}))
	if err := conn.QueryRow(pctx, "SELECT {x:Int64} + 1").Scan(&param); err != nil || param != 42 {
		t.Fatalf("query parameter: %d, %v", param, err)
	}

	db := uniqueTable("db")
	if err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	other := chTarget{base: c.base, database: db}.open(t, nil)
	var cur string
	if err := other.QueryRow(ctx, "SELECT currentDatabase()").Scan(&cur); err != nil || cur != db {
		t.Fatalf("currentDatabase %q, %v; want %q", cur, err, db)
	}
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&cur); err != nil || cur != c.database {
		t.Fatalf("currentDatabase %q, %v; want %q", cur, err, c.database)
	}
}

// TestCompression runs a round trip with each compression clickhouse-go
// offers over HTTP.
func TestCompression(t *testing.T) {
	c := target(t)
	for _, m := range []clickhouse.CompressionMethod{clickhouse.CompressionLZ4, clickhouse.CompressionZSTD, clickhouse.CompressionGZIP, clickhouse.CompressionDeflate, clickhouse.CompressionBrotli} {
		t.Run(m.String(), func(t *testing.T) {
			conn := c.open(t, func(o *clickhouse.Options) {
				o.Compression = &clickhouse.Compression{Method: m}
				o.Settings = clickhouse.Settings{"enable_http_compression": 1}
			})
			ctx := context.Background()
			table := uniqueTable("comp")
			dropLater(t, conn, table)
			if err := conn.Exec(ctx, "CREATE TABLE "+table+" (i UInt32, s String) ENGINE = MergeTree ORDER BY i"); err != nil {
				t.Fatal(err)
			}
			b, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 5000; i++ {
				if err := b.Append(uint32(i), strings.Repeat("z", i%50)); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Send(); err != nil {
				t.Fatalf("send: %v", err)
			}
			var n uint64
			var total uint64
			if err := conn.QueryRow(ctx, "SELECT count(), sum(length(s)) FROM "+table).Scan(&n, &total); err != nil {
				t.Fatalf("select: %v", err)
			}
			if n != 5000 {
				t.Fatalf("count %d, want 5000", n)
			}
		})
	}
}

// TestPlainHTTPInserts inserts JSONEachRow, CSV, TSV and ArrowStream bodies
// with plain net/http, the way curl does.
func TestPlainHTTPInserts(t *testing.T) {
	c := target(t)
	conn := c.open(t, nil)
	ctx := context.Background()
	table := uniqueTable("plain")
	dropLater(t, conn, table)
	if err := conn.Exec(ctx, "CREATE TABLE "+table+" (id UInt32, name String, score Float64) ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatal(err)
	}

	arrowBody := func() []byte {
		schema := arrow.NewSchema([]arrow.Field{
			{Name: "id", Type: arrow.PrimitiveTypes.Uint32},
			{Name: "name", Type: arrow.BinaryTypes.String},
			{Name: "score", Type: arrow.PrimitiveTypes.Float64},
		}, nil)
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		b.Field(0).(*array.Uint32Builder).AppendValues([]uint32{400, 401}, nil)
		b.Field(1).(*array.StringBuilder).AppendValues([]string{"arrow a", "arrow b"}, nil)
		b.Field(2).(*array.Float64Builder).AppendValues([]float64{4.5, 4.25}, nil)
		rec := b.NewRecord()
		defer rec.Release()
		var buf bytes.Buffer
		w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}()

	for _, tc := range []struct {
		name  string
		query string // the query parameter ("" = statement in the body)
		body  []byte
		ids   []uint32
	}{
		{"JSONEachRow", "INSERT INTO " + table + " FORMAT JSONEachRow", []byte(`{"id":100,"name":"json a","score":1.5}` + "\n" + `{"score":2,"id":101,"name":"json b"}` + "\n"), []uint32{100, 101}},
		{"JSONEachRow statement in body", "", []byte("INSERT INTO " + table + " FORMAT JSONEachRow\n" + `{"id":102,"name":"body","score":3}`), []uint32{102}},
		{"CSV", "INSERT INTO " + table + " FORMAT CSV", []byte("200,\"csv, a\",1\n201,csv b,2\n"), []uint32{200, 201}},
		{"TSV", "INSERT INTO " + table + " (id, name, score) FORMAT TabSeparated", []byte("300\ttsv a\t1\n301\ttsv\\tb\t2\n"), []uint32{300, 301}},
		{"ArrowStream", "INSERT INTO " + table + " FORMAT ArrowStream", arrowBody, []uint32{400, 401}},
		{"Values", "INSERT INTO " + table + " VALUES", []byte("(500, 'values', 5)"), []uint32{500}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params := url.Values{}
			if tc.query != "" {
				params.Set("query", tc.query)
			}
			res, body := c.post(t, params, bytes.NewReader(tc.body), nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			params = url.Values{"query": {fmt.Sprintf("SELECT id FROM %s WHERE id >= %d AND id < %d ORDER BY id FORMAT JSONEachRow", table, tc.ids[0], tc.ids[0]+100)}}
			_, got := c.post(t, params, nil, nil)
			var want strings.Builder
			for _, id := range tc.ids {
				fmt.Fprintf(&want, "{\"id\":%d}\n", id)
			}
			if got != want.String() {
				t.Fatalf("read back %q, want %q", got, want.String())
			}
		})
	}
	res, body := c.post(t, url.Values{"query": {"SELECT name FROM " + table + " WHERE id = 301"}}, nil, nil)
	if res.StatusCode != 200 || body != "tsv\\tb\n" || res.Header.Get("X-ClickHouse-Format") != "TabSeparated" {
		t.Fatalf("TSV select: %d %q format %q", res.StatusCode, body, res.Header.Get("X-ClickHouse-Format"))
	}
}

// TestHTTPErrorsAndAuth checks status codes and headers of plain requests.
func TestHTTPErrorsAndAuth(t *testing.T) {
	c := target(t)
	res, body := c.post(t, url.Values{"query": {"SELEC 1"}}, nil, nil)
	if res.StatusCode != 500 || res.Header.Get("X-ClickHouse-Exception-Code") != "62" || !strings.Contains(body, "Code: 62.") {
		t.Fatalf("syntax error: %d code %q body %q", res.StatusCode, res.Header.Get("X-ClickHouse-Exception-Code"), body)
	}
	res, body = c.post(t, url.Values{"query": {"SELECT 1"}, "user": {"nobody"}, "password": {"wrong"}}, nil, nil)
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad credentials: status %d %q, want 401", res.StatusCode, body)
	}
	res, body = c.post(t, url.Values{"query": {"SELECT 1"}, "query_id": {"my-query"}}, nil, nil)
	if res.StatusCode != 200 || body != "1\n" || res.Header.Get("X-ClickHouse-Query-Id") != "my-query" {
		t.Fatalf("query id: %d %q %q", res.StatusCode, body, res.Header.Get("X-ClickHouse-Query-Id"))
	}
	res, body = c.post(t, url.Values{"query": {"SELECT 1; SELECT 2"}}, nil, nil)
	if res.StatusCode != 500 || res.Header.Get("X-ClickHouse-Exception-Code") != "62" {
		t.Fatalf("multi-statement: %d %q", res.StatusCode, body)
	}
	u := *c.base
	u.Path = "/ping"
	pr, err := http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := io.ReadAll(pr.Body)
	pr.Body.Close()
	if string(pb) != "Ok.\n" {
		t.Fatalf("/ping: %q", pb)
	}
}

// TestOtherTypesThroughTranscoding reads types driftwatch's tables do not
// use but analysts may select — geometry, enums, nested arrays, tuples —
// through the Native transcoding and its size check, with clickhouse-go.
func TestOtherTypesThroughTranscoding(t *testing.T) {
	c := target(t)
	conn := c.open(t, nil)
	var (
		pt    orb.Point
		ring  orb.Ring
		poly  orb.Polygon
		multi orb.MultiPolygon
		enum  string
		deep  [][]float64
		tup   []any
	)
	err := conn.QueryRow(context.Background(), `SELECT
		CAST((1.5, -2.5) AS Point), CAST([(0, 0), (1, 0), (1, 1)] AS Ring),
		CAST([[(0, 0), (2, 0), (2, 2)], [(0.5, 0.5), (1, 0.5), (1, 1)]] AS Polygon),
		CAST([[[(0, 0), (3, 0), (3, 3)]]] AS MultiPolygon),
		CAST('b', 'Enum8(\'a\' = 1, \'b\' = 2)'), [[1.5], [], [2.5, 3.5]], tuple(7, 'x')`).Scan(&pt, &ring, &poly, &multi, &enum, &deep, &tup)
	if err != nil {
		t.Fatal(err)
	}
	if pt != (orb.Point{1.5, -2.5}) || len(ring) != 3 || ring[2] != (orb.Point{1, 1}) || len(poly) != 2 || poly[1][0] != (orb.Point{0.5, 0.5}) ||
		len(multi) != 1 || multi[0][0][1] != (orb.Point{3, 0}) || enum != "b" || fmt.Sprint(deep) != "[[1.5] [] [2.5 3.5]]" || fmt.Sprint(tup) != "[7 x]" {
		t.Errorf("got %v %v %v %v %q %v %v", pt, ring, poly, multi, enum, deep, tup)
	}
}
