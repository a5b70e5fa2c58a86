package chserver

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// The HTTP compression of ClickHouse's HTTP interface, which is not the
// compress=1/decompress=1 block format (native.go, compressNative): a
// request body's Content-Encoding, and with enable_http_compression=1 a
// response's, chosen from the client's Accept-Encoding. The names and
// formats are ClickHouse's (src/IO/CompressionMethod.cpp):
//
//	gzip, x-gzip   gzip (RFC 1952)
//	deflate        zlib (RFC 1950); raw deflate (RFC 1951) is accepted too
//	br             Brotli
//	zstd           Zstandard frames
//	lz4            LZ4 frames (the LZ4F format, not ClickHouse's LZ4 blocks):
//	               what clickhouse-connect sends and asks for by default
//	xz             xz (LZMA2)
//	bz2            bzip2: requests only; Go has no bzip2 encoder, so a
//	               response asked for only in bz2 is sent uncompressed
//	snappy         one raw Snappy block holding the whole body, as
//	               ClickHouse's SnappyReadBuffer/SnappyWriteBuffer do (not
//	               the framing format)
//
// ClickHouse also reads gz, zst, brotli and lzma as Content-Encoding
// aliases; they are accepted here too.

// requestEncodings names the Content-Encodings a request body may have.
const requestEncodings = "gzip, deflate, br, zstd, lz4, xz, bz2 and snappy"

// responseEncodings are the encodings a response may be sent in, in the
// order they are chosen when a client's Accept-Encoding gives them the same
// weight (zstd first: the best ratio at a speed close to lz4's).
var responseEncodings = []string{"zstd", "br", "lz4", "snappy", "gzip", "deflate", "xz"}

// canonicalEncoding maps a Content-Encoding token to its name above, or ""
// for none, or false when it is unknown.
func canonicalEncoding(enc string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "", "identity", "none":
		return "", true
	case "gzip", "x-gzip", "gz":
		return "gzip", true
	case "deflate":
		return "deflate", true
	case "br", "brotli":
		return "br", true
	case "zstd", "zst":
		return "zstd", true
	case "lz4":
		return "lz4", true
	case "xz", "lzma":
		return "xz", true
	case "bz2", "bzip2":
		return "bz2", true
	case "snappy":
		return "snappy", true
	}
	return "", false
}

// decodeContent returns a reader of body with the Content-Encoding enc
// undone. limit bounds what is buffered for the encodings that cannot be
// streamed (snappy: one block); the caller bounds the decoded stream itself.
func decodeContent(body io.Reader, enc string, limit int64) (io.Reader, error) {
	name, ok := canonicalEncoding(enc)
	if !ok {
		return nil, errorf(http.StatusBadRequest, codeUnknownCompression, "unsupported Content-Encoding %q (%s are supported). (UNKNOWN_COMPRESSION_METHOD)", enc, requestEncodings)
	}
	if name == "" {
		return body, nil
	}
	src := &sourceReader{r: body}
	r, err := newDecoder(src, name, limit)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		if src.err != nil {
			return nil, src.err
		}
		return nil, errorf(http.StatusBadRequest, codeCannotDecompress, "read %s request body: %v. (CANNOT_DECOMPRESS)", name, err)
	}
	return &decodedReader{r: r, src: src, name: name}, nil
}

// sourceReader remembers the error of the body under a decoder, so that a
// failure of the body (its limit, a client gone) is told from bytes that
// do not decode.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	return n, err
}

// decodedReader reports bytes that do not decode as ClickHouse's
// CANNOT_DECOMPRESS, a 400, and the body's own failures as they are.
type decodedReader struct {
	r    io.Reader
	src  *sourceReader
	name string
}

func (d *decodedReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err == nil || errors.Is(err, io.EOF) {
		return n, err
	}
	if d.src.err != nil {
		return n, d.src.err
	}
	return n, errorf(http.StatusBadRequest, codeCannotDecompress, "read %s request body: %v. (CANNOT_DECOMPRESS)", d.name, err)
}

func newDecoder(body io.Reader, name string, limit int64) (io.Reader, error) {
	switch name {
	case "gzip":
		return gzip.NewReader(body)
	case "deflate":
		// zlib as ClickHouse sends it, or raw deflate as some clients do:
		// a zlib header is 0x78 then a byte making the pair a multiple of 31.
		br := bufio.NewReader(body)
		head, _ := br.Peek(2)
		if len(head) == 2 && head[0]&0x0f == 8 && (uint16(head[0])<<8|uint16(head[1]))%31 == 0 {
			return zlib.NewReader(br)
		}
		return flate.NewReader(br), nil
	case "br":
		return brotli.NewReader(body), nil
	case "zstd":
		zr, err := zstd.NewReader(body, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(uint64(max(limit, 1<<20))))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	case "lz4":
		return lz4.NewReader(body), nil
	case "xz":
		br := bufio.NewReaderSize(body, 12+1024)
		if err := checkXZDictionary(br); err != nil {
			return nil, err
		}
		return xz.NewReader(br)
	case "bz2":
		return bzip2.NewReader(body), nil
	case "snappy":
		return decodeSnappy(body, limit)
	}
	panic("BUG: canonicalEncoding returned an encoding newDecoder does not know: " + name)
}

// maxZstdWindow bounds the window a zstd body may ask for (the decoder
// allocates it): 128 MiB is zstd --long's.
const maxZstdWindow = 128 << 20

// maxXZDictionary bounds the LZMA2 dictionary an xz body may declare:
// the decoder allocates what the header says (up to 4 GiB) before it reads
// a byte of data. 64 MiB is xz -9's.
const maxXZDictionary = 64 << 20

// checkXZDictionary reads the dictionary size of the first block's LZMA2
// filter (xz file format 1.1.0, sections 2.1.1 and 3.1) without consuming
// it, and refuses one over maxXZDictionary. Writers use one filter chain for
// every block, and the engine's body limit still bounds the output.
func checkXZDictionary(br *bufio.Reader) error {
	head, _ := br.Peek(12 + 1024)
	if len(head) < 13 {
		return nil // too short to be xz: the decoder says why
	}
	block := head[12:]
	size := (int(block[0]) + 1) * 4
	if block[0] == 0 || len(block) < size || size < 2 {
		return nil // an index (empty stream) or a header the decoder refuses
	}
	flags, p := block[1], 2
	varint := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && p < size; i++ {
			b := block[p]
			p++
			v |= uint64(b&0x7f) << (7 * i)
			if b < 0x80 {
				return v, true
			}
		}
		return 0, false
	}
	if flags&0x40 != 0 {
		if _, ok := varint(); !ok {
			return nil
		}
	}
	if flags&0x80 != 0 {
		if _, ok := varint(); !ok {
			return nil
		}
	}
	for range int(flags&3) + 1 {
		id, ok1 := varint()
		n, ok2 := varint()
		if !ok1 || !ok2 || p+int(n) > size {
			return nil
		}
		if id == 0x21 && n == 1 {
			dict, err := lzma.DecodeDictCap(block[p])
			if err == nil && dict > maxXZDictionary {
				return fmt.Errorf("xz dictionary of %d bytes is over the %d bytes clickhouse-embedded accepts", dict, maxXZDictionary)
			}
		}
		p += int(n)
	}
	return nil
}

// decodeSnappy reads the one Snappy block of body, refusing before it
// allocates a block that decodes to more than limit bytes.
func decodeSnappy(body io.Reader, limit int64) (io.Reader, error) {
	src, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	if len(src) == 0 {
		return bytes.NewReader(nil), nil
	}
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return nil, err
	}
	if int64(n) > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	// A Snappy element expands at most 64/3-fold (a 3-byte copy of 64
	// bytes), so a header declaring more than that of its block is
	// corrupt: refused before a few bytes allocate gigabytes.
	if int64(n) > 22*int64(len(src))+64 {
		return nil, fmt.Errorf("snappy block declares %d decoded bytes from %d, more than Snappy can expand to", n, len(src))
	}
	dst, err := snappy.Decode(make([]byte, n), src)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(dst), nil
}

// pickEncoding chooses the response encoding for an Accept-Encoding
// header: the supported coding with the highest weight, ties broken by
// the order of responseEncodings; "" when none is acceptable (identity).
func pickEncoding(accept string) string {
	weight := map[string]float64{}
	star := -1.0
	for _, part := range strings.Split(accept, ",") {
		fields := strings.Split(part, ";")
		token := strings.ToLower(strings.TrimSpace(fields[0]))
		q := 1.0
		for _, f := range fields[1:] {
			k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if p, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = p
				}
			}
		}
		if token == "*" {
			star = q
			continue
		}
		if name, ok := canonicalEncoding(token); ok && name != "" {
			weight[name] = max(weight[name], q)
		}
	}
	best, bestQ := "", 0.0
	for _, name := range responseEncodings {
		q, ok := weight[name]
		if !ok {
			if star < 0 {
				continue
			}
			q = star
		}
		if q > bestQ {
			best, bestQ = name, q
		}
	}
	return best
}

// encodeContent compresses a whole response body in the encoding enc (a
// name from responseEncodings).
func encodeContent(out []byte, enc string) ([]byte, error) {
	if enc == "snappy" {
		return snappy.Encode(nil, out), nil
	}
	var buf bytes.Buffer
	var wc io.WriteCloser
	switch enc {
	case "gzip":
		wc = gzip.NewWriter(&buf)
	case "deflate":
		wc = zlib.NewWriter(&buf)
	case "br":
		wc = brotli.NewWriter(&buf)
	case "zstd":
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("start zstd response encoder: %w", err)
		}
		wc = zw
	case "lz4":
		wc = lz4.NewWriter(&buf)
	case "xz":
		xw, err := xz.NewWriter(&buf)
		if err != nil {
			return nil, fmt.Errorf("start xz response encoder: %w", err)
		}
		wc = xw
	default:
		panic("BUG: encodeContent called with an encoding it does not write: " + enc)
	}
	if _, err := wc.Write(out); err != nil {
		return nil, fmt.Errorf("encode response with %s: %w", enc, err)
	}
	if err := wc.Close(); err != nil {
		return nil, fmt.Errorf("encode response with %s: %w", enc, err)
	}
	return buf.Bytes(), nil
}
