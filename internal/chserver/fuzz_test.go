package chserver

import (
	"bufio"
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

func FuzzParseStatement(f *testing.F) {
	for _, s := range []string{
		"SELECT 1", "INSERT INTO t FORMAT JSONEachRow\n{\"a\":1}", "INSERT INTO t VALUES (1)",
		"SELECT displayName(), version(), revision(), timezone()", "/* x", "'unterminated", "`a\\", "--\n;;",
		"INSERT INTO t (a, b) SETTINGS x=1 FORMAT Native\x01\x02",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st := parseStatement(s)
		if st.dataStart < 0 || st.dataStart > len(s) {
			t.Fatalf("dataStart %d outside [0,%d]", st.dataStart, len(s))
		}
		for _, c := range st.revisionCalls {
			if c[0] < 0 || c[1] > len(s) || c[0] > c[1] {
				t.Fatalf("revision call range %v outside text", c)
			}
		}
		_ = rewriteRevision(s, st.revisionCalls, 54460)
	})
}

// FuzzRequest sends arbitrary query parameters and bodies through the
// whole handler against the fake engine: it must answer, never panic.
func FuzzRequest(f *testing.F) {
	f.Add("SELECT 1", "", "max_threads", "1", "")
	f.Add("INSERT INTO t FORMAT CSV", "1,2\n", "database", "x`y", "gzip")
	f.Add("", "INSERT INTO t FORMAT Native\n\x01\x02", "client_protocol_version", "54460", "")
	f.Add("", "SELECT 1", "compress", "1", "zstd")
	f.Add("INSERT INTO t", "VALUES (1)", "decompress", "1", "")
	f.Add("INSERT INTO t FORMAT CSV", "\x04\x22\x4d\x18\x64\x40\xa7\x04\x00\x00\x80\x31\x2c\x32\x0a\x00\x00\x00\x00", "max_threads", "1", "lz4")
	f.Add("SELECT 1", "", "enable_http_compression", "1", "snappy")
	f.Fuzz(func(t *testing.T, query, body, key, value, encoding string) {
		e := &fakeEngine{}
		h := newTestServer(t, e, func(o *Options) { o.MaxBodyBytes = 1 << 16 })
		params := url.Values{}
		if query != "" {
			params.Set("query", query)
		}
		params.Set(key, value)
		rec := do(h, "POST", "/?"+params.Encode(), strings.NewReader(body), map[string]string{"Content-Encoding": encoding})
		if rec.Code == 0 {
			t.Fatal("no status")
		}
		if strings.Contains(rec.Body.String(), "internal error in clickhouse-embedded") {
			t.Fatalf("handler panicked: %s", rec.Body)
		}
	})
}

func FuzzTranscodeNative(f *testing.F) {
	f.Add(nativeBlocks(f, 0, 1))
	f.Add(nativeBlocks(f, 0, 2))
	f.Add([]byte{1, 1, 1, 'x', 6, 'S', 't', 'r', 'i', 'n', 'g', 1, 'a'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1<<16 {
			return
		}
		const rev = 54460
		out, err := transcodeNative(in, rev)
		if err != nil {
			return
		}
		if len(in) > 0 && len(out) == 0 {
			t.Fatalf("non-empty input %x produced empty output", in)
		}
		// The round trip: the output, decoded as the client of revision
		// rev decodes it, holds the blocks the input held. Both sides are
		// re-encoded at revision 0 to compare them byte for byte.
		want, err := reencodeNative(in, 0)
		if err != nil {
			t.Fatalf("input %x transcoded, but does not decode again at revision 0: %v", in, err)
		}
		got, err := reencodeNative(out, rev)
		if err != nil {
			t.Fatalf("output of %x does not decode at revision %d: %v", in, rev, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("round trip of %x: the output decodes to other blocks (%x at revision 0, want %x)", in, got, want)
		}
	})
}

// reencodeNative decodes a stream of Native blocks written for revision
// rev, block after block as a client reads them, and encodes them again
// for revision 0.
func reencodeNative(in []byte, rev uint64) ([]byte, error) {
	br := bufio.NewReaderSize(bytes.NewReader(in), 256<<10)
	reader := chproto.NewReader(br)
	buf := &chproto.Buffer{}
	sc := &column.ServerContext{Revision: rev, Timezone: time.UTC}
	for i := 0; ; i++ {
		if _, err := br.Peek(1); err != nil {
			return buf.Buf, nil
		}
		block := proto.Block{ServerContext: sc}
		if err := block.Decode(reader, rev); err != nil {
			return nil, fmt.Errorf("decode block %d: %w", i, err)
		}
		if err := block.Encode(buf, 0); err != nil {
			return nil, fmt.Errorf("encode block %d: %w", i, err)
		}
	}
}
