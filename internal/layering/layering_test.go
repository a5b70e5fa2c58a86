package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/driftwatch/driftwatch"

// layer returns the layer of package path (relative to the module) and its
// group: two packages of one group may import each other; otherwise only a
// lower layer may be imported.
func layer(rel string) (rank int, group string) {
	top, _, _ := strings.Cut(rel, "/")
	switch top {
	case "schemas", "deploy":
		return 0, top
	case "internal":
		return 1, top
	case "ingest", "monitor", "retrain":
		return 2, top
	case "services":
		return 3, top
	}
	return -1, top
}

// violation says why from may not import to, or "" when it may.
func violation(from, to string) string {
	fr, fg := layer(from)
	tr, tg := layer(to)
	switch {
	case fr < 0:
		return fmt.Sprintf("%s is in no layer: add its top-level directory to internal/layering", from)
	case tr < 0:
		return fmt.Sprintf("%s is in no layer: add its top-level directory to internal/layering", to)
	case fg == tg:
		return ""
	case tr < fr:
		return ""
	case tr == fr:
		return fmt.Sprintf("%s imports its sibling %s (layer %d: siblings never import each other)", from, to, fr)
	default:
		return fmt.Sprintf("%s (layer %d) imports %s from the higher layer %d", from, fr, to, tr)
	}
}

type pkg struct {
	ImportPath string
	Imports    []string
	Module     *struct{ Path string }
}

// imports lists, for every package of the module, the module's packages it
// imports (relative paths), from `go list -deps`.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports,Module", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr.String())
	}
	graph := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		rel, ok := relative(p.ImportPath)
		if !ok {
			continue
		}
		graph[rel] = nil
		for _, imp := range p.Imports {
			if r, ok := relative(imp); ok {
				graph[rel] = append(graph[rel], r)
			}
		}
	}
	return graph
}

func relative(path string) (string, bool) {
	if path == module {
		return "", true
	}
	return strings.CutPrefix(path, module+"/")
}

func TestLayers(t *testing.T) {
	graph := imports(t)
	if len(graph) < 20 {
		t.Fatalf("go list found %d packages of the module; expected the whole tree", len(graph))
	}
	var bad []string
	for from, tos := range graph {
		for _, to := range tos {
			if v := violation(from, to); v != "" {
				bad = append(bad, v)
			}
		}
	}
	sort.Strings(bad)
	for _, v := range bad {
		t.Error(v)
	}
	t.Logf("checked the imports of %d packages", len(graph))
}

// TestRules checks the rule itself on edges it must refuse and allow, so
// that TestLayers cannot pass by allowing everything.
func TestRules(t *testing.T) {
	tests := []struct {
		from, to string
		ok       bool
	}{
		{"ingest", "schemas", true},
		{"monitor/window", "internal/chclient", true},
		{"monitor", "monitor/window", true},
		{"internal/migration", "deploy", true},
		{"services/driftwatch/bench", "services/driftwatch/gen", true},
		{"services/ingest", "ingest", true},
		{"internal/service", "internal/config", true},
		{"internal/cli", "monitor", false},
		{"retrain", "ingest", false},
		{"monitor", "retrain/model", false},
		{"schemas", "internal/kafkaio", false},
		{"deploy", "internal/migration", false},
		{"ingest", "services/ingest", false},
		{"tools/x", "schemas", false},
	}
	for _, tt := range tests {
		v := violation(tt.from, tt.to)
		if (v == "") != tt.ok {
			t.Errorf("%s → %s: violation %q, want allowed=%v", tt.from, tt.to, v, tt.ok)
		}
	}
}
