package chserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/driftwatch/driftwatch/internal/arrowch"
	"github.com/driftwatch/driftwatch/internal/chdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
)

const benchRows = 1_000_000

const benchSchema = `(f0 Float64, f1 Float64, f2 Float64, f3 Float64, f4 Float64,
	f5 Float64, f6 Float64, f7 Float64, f8 Float64, f9 Float64, features Map(String, Float64))
	ENGINE = MergeTree ORDER BY tuple()`

var benchFeatureNames = func() []string {
	n := make([]string, 20)
	for i := range n {
		n[i] = fmt.Sprintf("feature_%02d", i)
	}
	return n
}()

// benchRecord builds the benchmark rows as ingest batches them: an Arrow
// record of ten float64 columns and a map<utf8, float64> of 20 features,
// keys sorted. Row i holds f<c> = i*0.001 + c and feature_<k> =
// i%1000 + k/10.
func benchRecord() arrow.Record {
	fields := make([]arrow.Field, 0, 11)
	for c := 0; c < 10; c++ {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("f%d", c), Type: arrow.PrimitiveTypes.Float64})
	}
	fields = append(fields, arrow.Field{Name: "features", Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Float64)})
	b := array.NewRecordBuilder(memory.NewGoAllocator(), arrow.NewSchema(fields, nil))
	defer b.Release()
	for c := 0; c < 10; c++ {
		fb := b.Field(c).(*array.Float64Builder)
		fb.Reserve(benchRows)
		for i := 0; i < benchRows; i++ {
			fb.UnsafeAppend(float64(i)*0.001 + float64(c))
		}
	}
	mb := b.Field(10).(*array.MapBuilder)
	kb := mb.KeyBuilder().(*array.StringBuilder)
	ib := mb.ItemBuilder().(*array.Float64Builder)
	mb.Reserve(benchRows)
	kb.Reserve(benchRows * len(benchFeatureNames))
	ib.Reserve(benchRows * len(benchFeatureNames))
	for i := 0; i < benchRows; i++ {
		mb.Append(true)
		for k, name := range benchFeatureNames {
			kb.Append(name)
			ib.UnsafeAppend(float64(i%1000) + float64(k)/10)
		}
	}
	return b.NewRecord()
}

// featureRow is row i of the benchmark's features in key order, for
// clickhouse-go's block encoder.
type featureRow int

func (r featureRow) Put(any, any) {}
func (r featureRow) Iterator() column.MapIterator {
	return &featureIter{row: int(r), k: -1}
}

type featureIter struct{ row, k int }

func (it *featureIter) Next() bool { it.k++; return it.k < len(benchFeatureNames) }
func (it *featureIter) Key() any   { return benchFeatureNames[it.k] }
func (it *featureIter) Value() any { return float64(it.row%1000) + float64(it.k)/10 }

// writeNativeFile writes the benchmark rows, the same values in the same
// order as benchRecord, as a revision-0 Native file in blocks of 100,000
// rows: the format libchdb reads directly.
func writeNativeFile(b *testing.B, path string, rec arrow.Record) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const blockRows = 100_000
	for start := 0; start < benchRows; start += blockRows {
		block := &proto.Block{}
		for c := 0; c < 10; c++ {
			if err := block.AddColumn(fmt.Sprintf("f%d", c), "Float64"); err != nil {
				b.Fatal(err)
			}
			vals := rec.Column(c).(*array.Float64).Float64Values()[start : start+blockRows]
			if _, err := block.Columns[c].Append(vals); err != nil {
				b.Fatal(err)
			}
		}
		if err := block.AddColumn("features", column.Type("Map(String, Float64)")); err != nil {
			b.Fatal(err)
		}
		rows := make([]featureRow, blockRows)
		for i := range rows {
			rows[i] = featureRow(start + i)
		}
		if _, err := block.Columns[10].Append(rows); err != nil {
			b.Fatal(err)
		}
		buf := &chproto.Buffer{}
		if err := block.Encode(buf, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := f.Write(buf.Buf); err != nil {
			b.Fatal(err)
		}
	}
}

// benchFingerprint identifies a benchmark table's contents exactly,
// whatever order its rows are stored in; benchSpot reads one row back.
const (
	benchFingerprint = "SELECT count(), groupBitXor(cityHash64(f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, features)) FROM %s FORMAT TSV"
	benchSpot        = "SELECT round(f0, 6), round(f9, 6), round(features['feature_07'], 6), length(features) FROM %s ORDER BY f0 LIMIT 1 OFFSET 123456 FORMAT TSV"
	// Row 123456: f0 = 123.456, f9 = 132.456, feature_07 = 456 + 0.7.
	benchSpotWant = "123.456\t132.456\t456.7\t20\n"
)

// BenchmarkInsert1M compares a clickhouse-go batch insert of 1,000,000 rows
// (10 Float64 columns and a Map(String, Float64) of 20 features) through a
// clickhouse-embedded process against loading the same rows into libchdb
// in this process from a Native file. The rows start as an Arrow record,
// built before the clock starts as the direct side's file is, and go
// through arrowch.Insert, the path ingest uses: the server side's time
// covers converting and appending the columns, clickhouse-go's encoding,
// the HTTP transfer and the server's insert; the direct side is the engine
// alone. Both tables are checked to hold the same rows.
//
// Figures, all in one run so that they share the machine's state:
//   - server_rows/s, direct_rows/s, ratio: one clickhouse-go batch of all
//     1,000,000 rows against the direct load.
//   - pipelined_rows/s, pipelined_ratio: the same record inserted as 8
//     batches of 125,000 rows by 2 goroutines, so that clickhouse-go
//     encodes one batch while the server inserts another, as a client at
//     scale would.
//   - http_native_rows/s, http_ratio: the direct side's Native file POSTed
//     over plain HTTP, the server's share without clickhouse-go.
//
// Run with -benchtime=1x; set CHSERVER_BENCH_ADDR to choose the server's
// listen address.
func BenchmarkInsert1M(b *testing.B) {
	lib := testenv.Env(b, "CHDB_LIB_PATH", "path of libchdb.so (run `make deps`)")
	bin := buildServer(b)
	addr := os.Getenv("CHSERVER_BENCH_ADDR")
	if addr == "" {
		addr = freeAddr(b)
	}
	cmd, out := startServer(b, bin, "-http", addr, "-path", b.TempDir(), "-lib", lib)
	defer stopServer(b, cmd, out)

	conn, err := clickhouse.Open(&clickhouse.Options{Protocol: clickhouse.HTTP, Addr: []string{addr}})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()

	// Both sides' inputs are made before the clock starts: the record
	// ingest would hold, and the Native file of the same rows.
	rec := benchRecord()
	defer rec.Release()
	dir := b.TempDir()
	nativePath := filepath.Join(dir, "rows.native")
	writeNativeFile(b, nativePath, rec)
	const pipeBatches = 8
	slices := make([]arrow.Record, pipeBatches)
	for i := range slices {
		slices[i] = rec.NewSlice(int64(i*benchRows/pipeBatches), int64((i+1)*benchRows/pipeBatches))
		defer slices[i].Release()
	}

	direct, err := chdb.Open(chdb.Options{LibPath: lib, DataPath: filepath.Join(dir, "direct")})
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	ctx := context.Background()
	directQuery := func(q string) string {
		res, err := direct.Query(ctx, q, "")
		if err != nil {
			b.Fatalf("direct: %s: %v", q, err)
		}
		return string(res.Data)
	}
	serverQuery := func(q string) string {
		res, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader(q))
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			b.Fatalf("server: %s: %d %s", q, res.StatusCode, body)
		}
		return string(body)
	}
	// check compares a server table with the direct one.
	check := func(what, table, directTable string) {
		want := directQuery(fmt.Sprintf(benchFingerprint, directTable))
		if !strings.HasPrefix(want, fmt.Sprint(benchRows)+"\t") {
			b.Fatalf("direct table holds %q", want)
		}
		if got := serverQuery(fmt.Sprintf(benchFingerprint, table)); got != want {
			b.Fatalf("%s: table fingerprint %q, direct %q", what, got, want)
		}
		if got := serverQuery(fmt.Sprintf(benchSpot, table)); got != benchSpotWant {
			b.Fatalf("%s: row 123456 is %q, want %q", what, got, benchSpotWant)
		}
	}
	// settle waits until the server's background merges of earlier
	// inserts are done, so they do not eat into the next measurement.
	settle := func() {
		for i := 0; i < 600; i++ {
			if strings.TrimSpace(serverQuery("SELECT count() FROM system.merges")) == "0" {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	var serverTime, directTime, pipeTime, httpTime time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		table := fmt.Sprintf("bench_%d", n)
		// Direct first, so neither side runs while the other's
		// background merges still use the CPU.
		directQuery("CREATE TABLE " + table + " " + benchSchema)
		start := time.Now()
		directQuery(fmt.Sprintf("INSERT INTO %s SELECT * FROM file('%s', 'Native')", table, strings.ReplaceAll(nativePath, "'", "\\'")))
		directTime += time.Since(start)
		if got := directQuery(fmt.Sprintf(benchSpot, table)); got != benchSpotWant {
			b.Fatalf("direct: row 123456 is %q, want %q", got, benchSpotWant)
		}

		// One batch of the whole record.
		serverQuery("CREATE TABLE " + table + " " + benchSchema)
		start = time.Now()
		if err := arrowch.Insert(ctx, conn, table, rec, ""); err != nil {
			b.Fatal(err)
		}
		serverTime += time.Since(start)
		check("single batch", table, table)
		settle()

		// 8 batches from 2 goroutines.
		serverQuery("CREATE TABLE " + table + "_pipe " + benchSchema)
		start = time.Now()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for g := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g; i < pipeBatches && errs[g] == nil; i += 2 {
					errs[g] = arrowch.Insert(ctx, conn, table+"_pipe", slices[i], "")
				}
			}()
		}
		wg.Wait()
		pipeTime += time.Since(start)
		if err := errors.Join(errs...); err != nil {
			b.Fatal(err)
		}
		check("pipelined", table+"_pipe", table)
		settle()

		// The same Native bytes streamed over plain HTTP: the server's
		// own share, without clickhouse-go's row encoding.
		serverQuery("CREATE TABLE " + table + "_http " + benchSchema)
		f, err := os.Open(nativePath)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		res2, err := http.Post("http://"+addr+"/?query="+url.QueryEscape("INSERT INTO "+table+"_http FORMAT Native"), "application/octet-stream", f)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(res2.Body)
		res2.Body.Close()
		f.Close()
		if res2.StatusCode != 200 {
			b.Fatalf("HTTP insert: %d %s", res2.StatusCode, body)
		}
		httpTime += time.Since(start)
		check("plain HTTP", table+"_http", table)
		b.Logf("seconds: direct %.3f, single batch %.3f, pipelined %.3f, plain HTTP %.3f",
			directTime.Seconds(), serverTime.Seconds(), pipeTime.Seconds(), httpTime.Seconds())
		settle()
	}
	b.StopTimer()
	rate := func(d time.Duration) float64 { return float64(benchRows*b.N) / d.Seconds() }
	directRate := rate(directTime)
	b.ReportMetric(rate(serverTime), "server_rows/s")
	b.ReportMetric(directRate, "direct_rows/s")
	b.ReportMetric(rate(serverTime)/directRate, "ratio")
	b.ReportMetric(rate(pipeTime), "pipelined_rows/s")
	b.ReportMetric(rate(pipeTime)/directRate, "pipelined_ratio")
	b.ReportMetric(rate(httpTime), "http_native_rows/s")
	b.ReportMetric(rate(httpTime)/directRate, "http_ratio")
}
