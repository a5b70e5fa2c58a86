package chserver

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
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
		out, err := transcodeNative(in, 54460)
		if err != nil {
			return
		}
		// What transcodes must transcode back to revision 0 identically
		// once normalised: decoding the output with rev must succeed.
		if len(in) > 0 && len(out) == 0 && !bytes.Equal(in, out) {
			t.Fatalf("non-empty input %x produced empty output", in)
		}
	})
}
