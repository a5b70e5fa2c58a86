package chserver_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"

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

func benchRow(i int) ([10]float64, map[string]float64) {
	var cols [10]float64
	for c := range cols {
		cols[c] = float64(i)*0.001 + float64(c)
	}
	m := make(map[string]float64, 20)
	for k, name := range benchFeatureNames {
		m[name] = float64(i%1000) + float64(k)/10
	}
	return cols, m
}

// writeNativeFile writes the benchmark rows as a revision-0 Native file,
// the format libchdb reads directly.
func writeNativeFile(b *testing.B, path string) {
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
		}
		if err := block.AddColumn("features", column.Type("Map(String, Float64)")); err != nil {
			b.Fatal(err)
		}
		for i := start; i < start+blockRows; i++ {
			cols, m := benchRow(i)
			if err := block.Append(cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8], cols[9], m); err != nil {
				b.Fatal(err)
			}
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

// BenchmarkInsert1M compares a clickhouse-go batch insert of 1,000,000 rows
// (10 Float64 columns and a Map(String, Float64) of 20 features) through a
// clickhouse-embedded process against loading the same rows into libchdb
// in this process from a Native file. The server side includes the
// client's own encoding, as a real ingest pays it; the direct side is the
// engine alone. It also reports the same Native file POSTed over plain
// HTTP (http_native_rows/s, http_ratio): the server's share without
// clickhouse-go's client-side encoding. Run with -benchtime=1x.
func BenchmarkInsert1M(b *testing.B) {
	lib := testenv.Env(b, "CHDB_LIB_PATH", "path of libchdb.so (run `make deps`)")
	bin := buildServer(b)
	addr := freeAddr(b)
	cmd, out := startServer(b, bin, "-http", addr, "-path", b.TempDir(), "-lib", lib)
	defer stopServer(b, cmd, out)

	conn, err := clickhouse.Open(&clickhouse.Options{Protocol: clickhouse.HTTP, Addr: []string{addr}})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()

	dir := b.TempDir()
	nativePath := filepath.Join(dir, "rows.native")
	writeNativeFile(b, nativePath)
	direct, err := chdb.Open(chdb.Options{LibPath: lib, DataPath: filepath.Join(dir, "direct")})
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	ctx := context.Background()

	// Columns are built before the clock starts, as the direct side's
	// file is: both sides time the insert, not the making of the data.
	// The columnar Append is how a batch of Arrow records is handed over.
	var cols [10][]float64
	for c := range cols {
		cols[c] = make([]float64, benchRows)
	}
	maps := make([]map[string]float64, benchRows)
	distinct := make([]map[string]float64, 1000)
	for i := 0; i < benchRows; i++ {
		row, m := benchRow(i)
		for c := range cols {
			cols[c][i] = row[c]
		}
		if distinct[i%1000] == nil {
			distinct[i%1000] = m
		}
		maps[i] = distinct[i%1000]
	}

	var serverTime, directTime, httpTime time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		table := fmt.Sprintf("bench_%d", n)
		// Direct first, so neither side runs while the other's
		// background merges still use the CPU.
		if _, err := direct.Query(ctx, "CREATE TABLE "+table+" "+benchSchema, ""); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		q := fmt.Sprintf("INSERT INTO %s SELECT * FROM file('%s', 'Native')", table, strings.ReplaceAll(nativePath, "'", "\\'"))
		if _, err := direct.Query(ctx, q, ""); err != nil {
			b.Fatal(err)
		}
		directTime += time.Since(start)
		res, err := direct.Query(ctx, "SELECT count() FROM "+table, "TSV")
		if err != nil || strings.TrimSpace(string(res.Data)) != fmt.Sprint(benchRows) {
			b.Fatalf("direct table holds %q rows (%v)", res.Data, err)
		}

		if err := conn.Exec(ctx, "CREATE TABLE "+table+" "+benchSchema); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
		if err != nil {
			b.Fatal(err)
		}
		for c := range cols {
			if err := batch.Column(c).Append(cols[c]); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Column(10).Append(maps); err != nil {
			b.Fatal(err)
		}
		appended := time.Since(start)
		if err := batch.Send(); err != nil {
			b.Fatal(err)
		}
		serverTime += time.Since(start)
		b.Logf("server side: append %v, send %v", appended, time.Since(start)-appended)
		var count uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&count); err != nil || count != benchRows {
			b.Fatalf("server table holds %d rows (%v)", count, err)
		}

		// The same Native bytes streamed over plain HTTP: the server's
		// own share, without clickhouse-go's row encoding.
		if err := conn.Exec(ctx, "CREATE TABLE "+table+"_http "+benchSchema); err != nil {
			b.Fatal(err)
		}
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
	}
	b.StopTimer()
	serverRate := float64(benchRows*b.N) / serverTime.Seconds()
	directRate := float64(benchRows*b.N) / directTime.Seconds()
	b.ReportMetric(serverRate, "server_rows/s")
	b.ReportMetric(directRate, "direct_rows/s")
	b.ReportMetric(serverRate/directRate, "ratio")
	httpRate := float64(benchRows*b.N) / httpTime.Seconds()
	b.ReportMetric(httpRate, "http_native_rows/s")
	b.ReportMetric(httpRate/directRate, "http_ratio")
}
