package chdb_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/driftwatch/driftwatch/internal/chdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
)

func TestOpenMissingLibrary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "libchdb.so")
	_, err := chdb.Open(chdb.Options{LibPath: path, DataPath: t.TempDir()})
	if !errors.Is(err, chdb.ErrLibraryNotFound) {
		t.Fatalf("Open = %v, want ErrLibraryNotFound", err)
	}
	for _, want := range []string{"make deps", path, "CHDB_LIB_PATH"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestEngine exercises one engine; libchdb runs one engine per process, so
// every check shares it.
func TestEngine(t *testing.T) {
	lib := testenv.Env(t, "CHDB_LIB_PATH", "path of libchdb.so (run `make deps`)")
	c, err := chdb.Open(chdb.Options{LibPath: lib, DataPath: t.TempDir(), Sessions: 3})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer c.Close()
	ctx := context.Background()

	t.Run("query", func(t *testing.T) {
		res, err := c.Query(ctx, "SELECT number * 2 FROM numbers(3)", "CSV")
		if err != nil || string(res.Data) != "0\n2\n4\n" {
			t.Fatalf("got %q, %v", res.Data, err)
		}
	})
	t.Run("error codes", func(t *testing.T) {
		for sql, code := range map[string]int{"SELEC 1": 62, "SELECT * FROM nope_table": 60} {
			_, err := c.Query(ctx, sql, "CSV")
			var ce *chdb.Error
			if !errors.As(err, &ce) || ce.Code != code {
				t.Errorf("%s: %v, want code %d", sql, err, code)
			}
		}
	})
	t.Run("params and stream insert", func(t *testing.T) {
		s, err := c.Session(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release(s, false)
		if _, err := s.Query("CREATE TABLE t (a Int64, b String) ENGINE = MergeTree ORDER BY a", ""); err != nil {
			t.Fatal(err)
		}
		ins, err := s.StreamInsert("INSERT INTO t (b, a)", "JSONEachRow")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if _, err := fmt.Fprintf(ins, "{\"a\":%d,\"b\":\"v%d\"}\n", i, i); err != nil {
				t.Fatal(err)
			}
		}
		res, err := ins.Done()
		if err != nil || res.RowsWritten != 3 {
			t.Fatalf("done: %+v, %v", res, err)
		}
		got, err := s.QueryParams("SELECT b FROM t WHERE a >= {min:Int64} ORDER BY a", "TSV", map[string]string{"min": "1"})
		if err != nil || string(got.Data) != "v1\nv2\n" {
			t.Fatalf("got %q, %v", got.Data, err)
		}
		bad, err := s.StreamInsert("INSERT INTO t", "JSONEachRow")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = bad.Write([]byte(`{"a":"x"}`))
		if _, err := bad.Done(); err == nil {
			t.Fatal("bad row inserted without error")
		}
	})
	t.Run("parallel sessions", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				res, err := c.Query(ctx, fmt.Sprintf("SELECT sum(number) FROM numbers(%d)", 1000+i), "TSV")
				want := fmt.Sprintf("%d\n", (1000+i)*(999+i)/2)
				if err != nil || string(res.Data) != want {
					t.Errorf("got %q, %v; want %q", res.Data, err, want)
				}
			}(i)
		}
		wg.Wait()
	})
	t.Run("broken session is replaced", func(t *testing.T) {
		s, err := c.Session(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = s.Query("SET max_threads = 1", "")
		c.Release(s, true)
		for i := 0; i < 3; i++ {
			res, err := c.Query(ctx, "SELECT getSetting('max_threads') = 1", "TSV")
			if err != nil || string(res.Data) != "0\n" {
				t.Fatalf("a session kept max_threads = 1: %q, %v", res.Data, err)
			}
		}
	})
}
