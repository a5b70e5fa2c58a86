package chserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	chcompress "github.com/ClickHouse/ch-go/compress"
	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/snappy"

	"github.com/driftwatch/driftwatch/internal/chdb"
)

// encodedFixtures are the bodies in testdata/encodings, written by Python's
// encoders (make.py there), by Content-Encoding; br and snappy have no
// encoder in the Python standard library or the clients venv and are made
// by their Go reference encoders below.
func encodedFixtures(t testing.TB) (plain []byte, bodies map[string][]byte) {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "encodings", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	plain = read("plain.csv")
	var br bytes.Buffer
	bw := brotli.NewWriter(&br)
	_, _ = bw.Write(plain)
	_ = bw.Close()
	bodies = map[string][]byte{
		"gzip":        read("gzip.csv.gz"),
		"x-gzip":      read("gzip.csv.gz"),
		"deflate":     read("deflate.csv.zlib"),
		"deflate-raw": read("deflate-raw.csv.deflate"),
		"xz":          read("xz.csv.xz"),
		"bz2":         read("bz2.csv.bz2"),
		"lz4":         read("lz4.csv.lz4"),
		"zstd":        read("zstd.csv.zst"),
		"br":          br.Bytes(),
		"snappy":      snappy.Encode(nil, plain),
	}
	return plain, bodies
}

// TestRequestContentEncodings sends an INSERT's data in every encoding
// ClickHouse's HTTP interface reads and checks that the engine received
// the plain rows.
func TestRequestContentEncodings(t *testing.T) {
	plain, bodies := encodedFixtures(t)
	for enc, body := range bodies {
		t.Run(enc, func(t *testing.T) {
			header := enc
			if enc == "deflate-raw" {
				header = "deflate"
			}
			f := &fakeEngine{}
			h := newTestServer(t, f, nil)
			rec := do(h, "POST", "/?query="+url.QueryEscape("INSERT INTO t FORMAT CSV"), bytes.NewReader(body), map[string]string{"Content-Encoding": header})
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			want := "INSERT INTO t|CSV|" + string(plain)
			if len(f.inserts) != 1 || f.inserts[0] != want {
				t.Fatalf("engine got %d inserts, first %.80q; want the %d plain bytes", len(f.inserts), strings.Join(f.inserts, ""), len(plain))
			}
		})
	}
}

// TestRequestEncodingErrors: an unknown encoding is ClickHouse's
// UNKNOWN_COMPRESSION_METHOD, a body that is not what its encoding says is
// a 400, and a body that decodes to more than the limit is a 413.
func TestRequestEncodingErrors(t *testing.T) {
	plain, bodies := encodedFixtures(t)
	insert := "/?query=" + url.QueryEscape("INSERT INTO t FORMAT CSV")
	for _, tc := range []struct {
		name, enc string
		body      []byte
		limit     int64
		status    int
		code      string
		contains  string
	}{
		{name: "unknown", enc: "compress", body: plain, status: 400, code: "438"},
		{name: "gzip garbage", enc: "gzip", body: []byte("not gzip"), status: 400, code: "271"},
		{name: "lz4 garbage", enc: "lz4", body: []byte("not an lz4 frame"), status: 400, code: "271"},
		{name: "zstd garbage", enc: "zstd", body: []byte("not a zstd frame"), status: 400, code: "271"},
		{name: "snappy declaring 4 GiB in 7 bytes", enc: "snappy", body: []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2}, status: 400, code: "271", contains: "more than Snappy can expand"},
		{name: "snappy garbage", enc: "snappy", body: []byte{0x05, 0xff, 0xff}, status: 400, code: "271"},
		{name: "xz garbage", enc: "xz", body: []byte("not xz at all"), status: 400, code: "271"},
		{name: "xz huge dictionary", enc: "xz", body: xzWithDictCode(bodies["xz"], 40), status: 400, code: "271", contains: "xz dictionary of 4294967295 bytes"},
		{name: "bz2 garbage", enc: "bz2", body: []byte("BZh9 not bzip2"), status: 400, code: "271"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestServer(t, &fakeEngine{}, nil)
			rec := do(h, "POST", insert, bytes.NewReader(tc.body), map[string]string{"Content-Encoding": tc.enc})
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.code != "" && rec.Header().Get("X-ClickHouse-Exception-Code") != tc.code {
				t.Fatalf("exception code %q, want %s: %s", rec.Header().Get("X-ClickHouse-Exception-Code"), tc.code, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tc.contains) {
				t.Fatalf("body %q does not say %q", rec.Body, tc.contains)
			}
		})
	}
	// A decompression bomb meets the body limit in every encoding, snappy
	// before it allocates the block.
	for enc, body := range bodies {
		t.Run("bomb "+enc, func(t *testing.T) {
			header := strings.TrimSuffix(enc, "-raw")
			h := newTestServer(t, &fakeEngine{}, func(o *Options) { o.MaxBodyBytes = int64(len(plain)) / 2 })
			if int64(len(body)) > int64(len(plain))/2 {
				t.Skipf("%s fixture (%d bytes) is itself over the limit", enc, len(body))
			}
			rec := do(h, "POST", insert, bytes.NewReader(body), map[string]string{"Content-Encoding": header})
			if rec.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413: %s", rec.Code, rec.Body)
			}
		})
	}
}

// TestResponseEncodings asks for each encoding with enable_http_compression=1
// and decodes the response with an independent decoder where there is one.
func TestResponseEncodings(t *testing.T) {
	plain, _ := encodedFixtures(t)
	for _, enc := range responseEncodings {
		t.Run(enc, func(t *testing.T) {
			f := &fakeEngine{answer: func(string) (*chdb.Result, error) { return &chdb.Result{Data: plain}, nil }}
			h := newTestServer(t, f, nil)
			rec := do(h, "GET", "/?enable_http_compression=1&query=SELECT+1", nil, map[string]string{"Accept-Encoding": enc})
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if got := rec.Header().Get("Content-Encoding"); got != enc {
				t.Fatalf("Content-Encoding %q, want %q", got, enc)
			}
			r, err := decodeContent(rec.Body, enc, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("decoded %d bytes (%v), want the %d plain bytes", len(got), err, len(plain))
			}
		})
	}
	// Without the parameter the engine's value decides, as the server's
	// profile does in ClickHouse: chDB's is 1, ClickHouse server's 0.
	for _, tc := range []struct {
		name     string
		engineOn bool
		param    string
		want     string
	}{
		{name: "engine default off", want: ""},
		{name: "engine default on", engineOn: true, want: "lz4"},
		{name: "engine on, request off", engineOn: true, param: "&enable_http_compression=0", want: ""},
		{name: "engine off, request on", param: "&enable_http_compression=1", want: "lz4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeEngine{answer: func(string) (*chdb.Result, error) { return &chdb.Result{Data: plain}, nil }}
			s, err := New(Options{Addr: "127.0.0.1:0", User: "default", Engine: f, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			s.httpCompression = tc.engineOn
			rec := do(s.Handler(), "GET", "/?query=SELECT+1"+tc.param, nil, map[string]string{"Accept-Encoding": "lz4"})
			if got := rec.Header().Get("Content-Encoding"); got != tc.want {
				t.Fatalf("Content-Encoding %q, want %q", got, tc.want)
			}
			if tc.want == "" && !bytes.Equal(rec.Body.Bytes(), plain) {
				t.Fatalf("%d bytes: want the plain body", rec.Body.Len())
			}
		})
	}
}

func TestPickEncoding(t *testing.T) {
	for _, tc := range []struct{ accept, want string }{
		{"", ""},
		{"identity", ""},
		{"gzip", "gzip"},
		{"lz4", "lz4"},
		{"x-gzip", "gzip"},
		{"bz2", ""},                        // read, never written
		{"gzip, deflate, br", "br"},        // ClickHouse's preference among equals
		{"lz4, zstd, br, gzip", "zstd"},    // what clickhouse-connect sends
		{"gzip;q=1.0, zstd;q=0.5", "gzip"}, // weights first
		{"zstd;q=0, gzip", "gzip"},
		{"*", "zstd"},
		{"br;q=0, *;q=0.1", "zstd"},
		{"compress, snappy", "snappy"},
		{"GZIP ; Q=0.9", "gzip"},
	} {
		if got := pickEncoding(tc.accept); got != tc.want {
			t.Errorf("pickEncoding(%q) = %q, want %q", tc.accept, got, tc.want)
		}
	}
}

// FuzzDecodeContent feeds arbitrary bodies to every decoder behind the
// body limit, as parseRequest does: decoding may fail but must not panic
// nor return more than the limit.
func FuzzDecodeContent(f *testing.F) {
	_, bodies := encodedFixtures(f)
	for enc, body := range bodies {
		f.Add(strings.TrimSuffix(enc, "-raw"), body[:min(len(body), 4096)])
	}
	f.Add("snappy", []byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add("lz4", []byte{0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7})
	f.Fuzz(func(t *testing.T, enc string, body []byte) {
		const limit = 1 << 16
		r, err := decodeContent(bytes.NewReader(body), enc, limit)
		if err != nil {
			var he *httpError
			var mbe *http.MaxBytesError
			if !errors.As(err, &he) && !errors.As(err, &mbe) {
				t.Fatalf("error %v is neither an httpError nor a MaxBytesError", err)
			}
			return
		}
		n, _ := io.Copy(io.Discard, &limitedBody{r: r, left: limit, limit: limit})
		if n > limit {
			t.Fatalf("read %d bytes past the %d limit", n, limit)
		}
	})
}

// xzWithDictCode rewrites the LZMA2 dictionary size code of a one-filter
// xz fixture (40 is 4 GiB - 1, the largest) and fixes the block header's
// CRC32, so only the dictionary is wrong.
func xzWithDictCode(xzBody []byte, code byte) []byte {
	b := append([]byte(nil), xzBody...)
	block := b[12:]
	size := (int(block[0]) + 1) * 4
	// Header: size, flags (no sizes, one filter), filter id 0x21, props
	// size 1, the dictionary code, padding, CRC32.
	if block[1] != 0 || block[2] != 0x21 || block[3] != 1 {
		panic("BUG: the xz fixture's block header is not the one-filter LZMA2 header this helper edits")
	}
	block[4] = code
	binary.LittleEndian.PutUint32(block[size-4:], crc32.ChecksumIEEE(block[:size-4]))
	return b
}

// TestDecompressStatementInBody sends a whole INSERT, statement and data,
// in ClickHouse's compressed blocks with decompress=1 and no query
// parameter, as the JDBC driver does with decompress=true: the rows must
// reach the engine once.
func TestDecompressStatementInBody(t *testing.T) {
	for _, m := range []chcompress.Method{chcompress.LZ4, chcompress.ZSTD} {
		t.Run(m.String(), func(t *testing.T) {
			w := chcompress.NewWriter(chcompress.LevelZero, m)
			if err := w.Compress([]byte("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')")); err != nil {
				t.Fatal(err)
			}
			f := &fakeEngine{}
			rec := do(newTestServer(t, f, nil), "POST", "/?compress=1&decompress=1", bytes.NewReader(w.Data), nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			want := "INSERT INTO t (a, b)|Values| (1, 'x'), (2, 'y')"
			if len(f.inserts) != 1 || f.inserts[0] != want {
				t.Fatalf("engine got %q, want [%q]", f.inserts, want)
			}
		})
	}
}
