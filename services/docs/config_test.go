package docs

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/driftwatch/driftwatch/ingest"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/retrain"
	"github.com/driftwatch/driftwatch/retrain/serve"
)

var update = flag.Bool("update", false, "rewrite the generated reference pages under docs/")

const module = "github.com/driftwatch/driftwatch"

// root is the module's directory (this package is services/docs).
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// setting is one configuration key of a service.
type setting struct {
	key, env, flag, def, help string
}

// services are the services whose settings docs/configuration.md lists,
// with their configuration in effect by default.
func services() []struct {
	name string
	cfg  config.Validator
} {
	return []struct {
		name string
		cfg  config.Validator
	}{{"ingest", ingest.DefaultConfig()}, {"monitor", monitor.DefaultConfig()}, {"trainer", retrain.DefaultConfig()}, {"serve", serve.DefaultConfig()}}
}

// TestConfigurationReference: docs/configuration.md lists every setting of
// every service, read from the configuration structs' tags and comments
// with its default in effect; `go test ./services/docs -run
// TestConfigurationReference -update` rewrites it.
func TestConfigurationReference(t *testing.T) {
	dir := root(t)
	docs := newComments(t, dir)
	var b strings.Builder
	b.WriteString(configHeader)
	common := map[string]bool{}
	var shared []setting
	perService := map[string][]setting{}
	for _, s := range services() {
		defaults := resolvedYAML(t, s.cfg)
		var out []setting
		seen := map[reflect.Type]string{}
		walk(reflect.TypeOf(s.cfg).Elem(), "", docs, defaults, seen, func(st setting, commonKey bool) {
			if commonKey {
				if !common[st.key] {
					common[st.key] = true
					shared = append(shared, st)
				}
				return
			}
			out = append(out, st)
		})
		perService[s.name] = out
	}
	b.WriteString("## Every service\n\n")
	b.WriteString("The keys of `config.Common`, the retention the DDL takes (`migration.Config`) and, for the monitor and the trainer, `trigger_signing_key_file`; defaults shown are ingest's (`http_addr` is `127.0.0.1:9101` for ingest, `9102` for the monitor, `9103` for the trainer).\n\n")
	table(&b, shared)
	for _, s := range services() {
		fmt.Fprintf(&b, "\n## %s\n\n", s.name)
		table(&b, perService[s.name])
	}
	got := b.String()
	path := filepath.Join(dir, "docs", "configuration.md")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./services/docs -run TestConfigurationReference -update)", err)
	}
	if string(want) != got {
		t.Errorf("docs/configuration.md is not what the configuration structs say; run go test ./services/docs -run TestConfigurationReference -update and commit it. First difference: %s", firstDiff(string(want), got))
	}
}

const configHeader = `# Configuration reference

Generated from the configuration structs (their ` + "`yaml`, `env`, `flag` and `help`" + ` tags and
comments) by ` + "`go test ./services/docs -run TestConfigurationReference -update`" + `; the same test
fails when this page and the code differ. The default is the value in effect, as ` + "`-check-config`" + `
prints it. Back to the [README](../README.md#configuration).

**One file per service.** Each service reads its own YAML file (` + "`-config FILE`" + ` or
` + "`DRIFTWATCH_CONFIG`" + `), which holds only that service's keys: the keys of "Every service" and those
of its own section below. A key of another service is an error (unknown keys are errors), so a
deployment keeps one file per service (for example ` + "`ingest.yml`, `monitor.yml`, `trainer.yml`" + `),
and the shared keys are repeated in each or given once through the environment.
Precedence: defaults < file < environment < flags. Keys with no environment variable or flag
(nested sections, maps, lists) are set in the file only. A list that has a flag takes a comma list,
and the flag given more than once collects every value (` + "`-kafka-brokers a:9092 -kafka-brokers b:9092`" + `).

`

func table(b *strings.Builder, ss []setting) {
	b.WriteString("| key | environment | flag | default | meaning |\n|---|---|---|---|---|\n")
	for _, s := range ss {
		cell := func(v string) string {
			if v == "" {
				return ""
			}
			return "`" + v + "`"
		}
		flagName := ""
		if s.flag != "" {
			flagName = "-" + s.flag
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", s.key, cell(s.env), cell(flagName), defaultCell(s.def), escape(s.help))
	}
}

func defaultCell(d string) string {
	switch d {
	case "—":
		return d
	case "":
		return "empty"
	case "[]", "{}":
		return "none"
	}
	return "`" + strings.ReplaceAll(d, "|", `\|`) + "`"
}

func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// resolvedYAML is cfg as -check-config prints it, parsed.
func resolvedYAML(t *testing.T, cfg config.Validator) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	if err := config.Dump(&buf, cfg); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

var durationType = reflect.TypeOf(time.Duration(0))

// walk calls f for every key under t, nested sections as dotted paths and
// a map of sections as <key>.<id>.…; commonKey tells the keys that come
// from internal/config or internal/migration, which every service shares.
//
// A section whose type was listed before (a model's policy, the trainer's
// models) is one row naming where its keys are.
func walk(t reflect.Type, prefix string, docs *comments, defaults map[string]any, seen map[reflect.Type]string, f func(setting, bool)) {
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		key := strings.Split(sf.Tag.Get("yaml"), ",")[0]
		if key == "-" {
			continue
		}
		ft := sf.Type
		if sf.Anonymous && key == "" {
			walk(ft, prefix, docs, defaults, seen, f)
			continue
		}
		path := prefix + key
		commonKey := prefix == "" && (strings.HasPrefix(t.PkgPath(), module+"/internal/config") || strings.HasPrefix(t.PkgPath(), module+"/internal/migration"))
		help := sf.Tag.Get("help")
		if c := docs.field(t, sf.Name); c != "" && (help == "" || ft.Kind() == reflect.Struct || ft.Kind() == reflect.Map) {
			if help == "" {
				help = c
			}
		}
		elem := ft
		if elem.Kind() == reflect.Pointer {
			elem = elem.Elem()
		}
		isSection := func(t reflect.Type) bool {
			return t.Kind() == reflect.Struct && t != durationType && t != reflect.TypeOf(time.Time{})
		}
		switch {
		case isSection(elem) && seen[elem] != "":
			f(setting{key: path, def: "—", help: strings.TrimSpace(help + " The keys of `" + seen[elem] + "`.")}, commonKey)
			continue
		case isSection(elem):
			seen[elem] = path
			sub, _ := defaults[key].(map[string]any)
			walk(elem, path+".", docs, sub, seen, f)
			continue
		case elem.Kind() == reflect.Map && isSection(elem.Elem()) && seen[elem.Elem()] != "":
			f(setting{key: path, def: format(defaults[key]), help: strings.TrimSpace(help + " One entry per model id, with the keys of `" + seen[elem.Elem()] + "`.")}, commonKey)
			continue
		case elem.Kind() == reflect.Map && isSection(elem.Elem()):
			seen[elem.Elem()] = path + ".<model>"
			f(setting{key: path, def: format(defaults[key]), help: strings.TrimSpace(help + " One entry per model id, with the keys below.")}, commonKey)
			walk(elem.Elem(), path+".<model>.", docs, nil, seen, f)
			continue
		}
		def := format(defaults[key])
		if defaults == nil {
			def = "—"
		}
		f(setting{key: path, env: sf.Tag.Get("env"), flag: sf.Tag.Get("flag"), def: def, help: help}, commonKey)
	}
}

// format writes a default compactly (YAML flow style).
func format(v any) string {
	if v == nil {
		return ""
	}
	switch x := v.(type) {
	case string:
		return x
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = format(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ": " + format(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

// comments are the doc comments of the module's struct fields, read from
// the source: a field without its own comment takes that of the field
// declared on the line above it (one comment for a group of fields).
type comments struct {
	root  string
	fset  *token.FileSet
	types map[string]map[string]*ast.StructType // package path → type name → struct
	t     *testing.T
}

func newComments(t *testing.T, root string) *comments {
	return &comments{root: root, fset: token.NewFileSet(), types: map[string]map[string]*ast.StructType{}, t: t}
}

func (c *comments) field(t reflect.Type, name string) string {
	pkg := t.PkgPath()
	if !strings.HasPrefix(pkg, module) {
		return ""
	}
	if _, ok := c.types[pkg]; !ok {
		c.load(pkg)
	}
	st := c.types[pkg][t.Name()]
	if st == nil {
		return ""
	}
	var prevDoc string
	prevLine := -10
	for _, fl := range st.Fields.List {
		line := c.fset.Position(fl.Pos()).Line
		doc := ""
		if fl.Doc != nil {
			doc = fl.Doc.Text()
		} else if fl.Comment != nil {
			doc = fl.Comment.Text()
		} else if line == prevLine+1 {
			doc = prevDoc
		}
		for _, n := range fl.Names {
			if n.Name == name {
				return strings.Join(strings.Fields(doc), " ")
			}
		}
		prevDoc, prevLine = doc, c.fset.Position(fl.End()).Line
	}
	return ""
}

func (c *comments) load(pkg string) {
	c.types[pkg] = map[string]*ast.StructType{}
	dir := filepath.Join(c.root, strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/"))
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		c.t.Fatal(err)
	}
	for _, p := range files {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(c.fset, p, nil, parser.ParseComments)
		if err != nil {
			c.t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if ts, ok := n.(*ast.TypeSpec); ok {
				if st, ok := ts.Type.(*ast.StructType); ok {
					c.types[pkg][ts.Name.Name] = st
				}
			}
			return true
		})
	}
}

// firstDiff shows where two texts first differ, a line of each.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  doc:  %s\n  code: %s", i+1, x, y)
		}
	}
	return "none"
}
