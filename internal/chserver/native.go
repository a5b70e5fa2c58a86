package chserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// transcodeNative rewrites a stream of Native blocks as libchdb writes them
// (protocol revision 0: no block info, no per-column serialization flag)
// for a client that negotiated revision rev, using clickhouse-go's own
// block codec so the bytes are exactly what that client decodes. A nil
// error means out holds the whole stream.
func transcodeNative(in []byte, rev uint64) (out []byte, err error) {
	if rev == 0 {
		return in, nil
	}
	// The decoder trusts lengths in its input; the input is the engine's
	// own output, but a decoder bug must cost one request, not the server.
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("transcode Native to revision %d: decoder panic: %v", rev, r)
		}
	}()
	if err := checkNative(in); err != nil && !errors.Is(err, errUnknownType) {
		return nil, fmt.Errorf("check Native stream: %w", err)
	}
	// chproto.NewReader reuses a *bufio.Reader at least its own buffer
	// size, which lets Peek tell the end of the stream from a cut block.
	br := bufio.NewReaderSize(bytes.NewReader(in), 256<<10)
	reader := chproto.NewReader(br)
	buf := &chproto.Buffer{Buf: make([]byte, 0, len(in)+len(in)/16+64)}
	sc := &column.ServerContext{Revision: rev, Timezone: time.UTC}
	for i := 0; ; i++ {
		if _, err := br.Peek(1); err != nil {
			return buf.Buf, nil
		}
		block := proto.Block{ServerContext: sc}
		if err := block.Decode(reader, 0); err != nil {
			return nil, fmt.Errorf("decode Native block %d: %w", i, err)
		}
		if err := block.Encode(buf, rev); err != nil {
			return nil, fmt.Errorf("encode Native block %d for revision %d: %w", i, rev, err)
		}
	}
}
