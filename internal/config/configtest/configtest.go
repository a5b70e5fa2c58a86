// Package configtest checks a service's -check-config output the same way
// for every service: it is the configuration in effect, so read back as a
// -config file it configures the service exactly as before, and it shows
// no empty placeholder for a setting that has a default.
package configtest

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/driftwatch/driftwatch/internal/config"
)

// CommonZeroKeys are the keys of config.Common and migration.Config whose
// empty value is a setting of its own, not a placeholder for a default:
// no SASL, no TLS, no password, no tokens file, no per-table retention,
// the brokers' own replication defaults (0), one ClickHouse server rather
// than a cluster.
var CommonZeroKeys = []string{
	"kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password", "kafka_sasl_password_file",
	"kafka_tls_ca_file", "kafka_tls_cert_file", "kafka_tls_key_file", "kafka_tls_server_name",
	"clickhouse_password", "clickhouse_tls_ca_file", "clickhouse_tls_cert_file", "clickhouse_tls_key_file",
	"api_tokens_file", "retention", "topic_replication_factor", "topic_min_insync_replicas", "clickhouse_cluster",
}

// Case is one configuration of a service to check.
type Case struct {
	Name string
	// File is YAML written to a -config file (none when empty), Env the
	// environment and Args the flags.
	File string
	Env  map[string]string
	Args []string
}

// RoundTrip loads each case into a fresh newConfig() with -check-config,
// and checks that its output (1) read back as the only source — no
// environment, no flags — gives the same output and the same resolved
// configuration, and (2) holds an empty value ("", 0, 0s, [] or {}) only
// at a key listed in zeroKeys (dotted paths such as "defaults.maturity";
// CommonZeroKeys are always allowed): every other setting shows the value
// the service will use. The configuration must be a config.Resolver, and
// no case may hold a secret (a redacted dump cannot be read back).
func RoundTrip(t *testing.T, name string, newConfig func() config.Validator, zeroKeys []string, cases []Case) {
	t.Helper()
	allowed := append(slices.Clone(CommonZeroKeys), zeroKeys...)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"-check-config"}
			if c.File != "" {
				p := filepath.Join(dir, "in.yaml")
				if err := os.WriteFile(p, []byte(c.File), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "-config", p)
			}
			first, firstDump := load(t, name, newConfig, append(args, c.Args...), c.Env)
			p := filepath.Join(dir, "dump.yaml")
			if err := os.WriteFile(p, firstDump, 0o600); err != nil {
				t.Fatal(err)
			}
			second, secondDump := load(t, name, newConfig, []string{"-check-config", "-config", p}, nil)
			if !bytes.Equal(firstDump, secondDump) {
				t.Errorf("-check-config output read back prints differently:\nfirst:\n%s\nsecond:\n%s", firstDump, secondDump)
			}
			a, b := first.(config.Resolver).Resolved(), second.(config.Resolver).Resolved()
			if !equal(reflect.ValueOf(a), reflect.ValueOf(b)) {
				t.Errorf("-check-config output read back configures differently:\nfirst:  %+v\nsecond: %+v", a, b)
			}
			var doc yaml.Node
			if err := yaml.Unmarshal(firstDump, &doc); err != nil {
				t.Fatalf("-check-config output is not YAML: %v", err)
			}
			for _, key := range emptyKeys(&doc, "") {
				if !allowedKey(allowed, key) {
					t.Errorf("-check-config shows %s empty, a placeholder for its default: print the value in effect (or list the key as meaning what it says)", key)
				}
			}
		})
	}
}

func load(t *testing.T, name string, newConfig func() config.Validator, args []string, env map[string]string) (config.Validator, []byte) {
	t.Helper()
	cfg := newConfig()
	if _, ok := cfg.(config.Resolver); !ok {
		t.Fatalf("%T is not a config.Resolver: -check-config would print zero values, not the defaults in effect", cfg)
	}
	res, err := config.Load(cfg, config.LoadOptions{Name: name, Args: args, Output: &bytes.Buffer{},
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatalf("load %v: %v", args, err)
	}
	if !res.CheckOnly {
		t.Fatal("-check-config was not seen")
	}
	var out bytes.Buffer
	if err := config.Dump(&out, cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), config.Redacted) || strings.Contains(out.String(), "<redacted>") {
		t.Fatalf("a case holds a secret; its dump cannot be read back:\n%s", out.String())
	}
	return cfg, out.Bytes()
}

// equal is reflect.DeepEqual except that a nil and an empty slice or map
// are equal (YAML writes both as [] or {}).
func equal(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equal(a.Elem(), b.Elem())
	case reflect.Struct:
		if tm, ok := a.Interface().(interface{ Equal(time.Time) bool }); ok && a.Type() == reflect.TypeOf(time.Time{}) {
			return tm.Equal(b.Interface().(time.Time))
		}
		for i := range a.NumField() {
			if !equal(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equal(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		it := a.MapRange()
		for it.Next() {
			if !equal(it.Value(), b.MapIndex(it.Key())) {
				return false
			}
		}
		return true
	}
	if !a.CanInterface() {
		return true // unexported: not configuration
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// emptyKeys returns the dotted paths of the empty leaves under n. Keys of
// a map chosen by the user (model ids) appear as they are.
func emptyKeys(n *yaml.Node, path string) []string {
	var out []string
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			out = append(out, emptyKeys(c, path)...)
		}
	case yaml.MappingNode:
		if len(n.Content) == 0 && path != "" {
			return []string{path}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if path != "" {
				k = path + "." + k
			}
			out = append(out, emptyKeys(n.Content[i+1], k)...)
		}
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			return []string{path}
		}
	case yaml.ScalarNode:
		switch n.Value {
		case "", "0", "0s", "null", "~":
			return []string{path}
		}
	}
	return out
}

// allowedKey matches key against the allowed paths, where "*" stands for
// one path element (a model id: "models.*.maturity").
func allowedKey(allowed []string, key string) bool {
	parts := strings.Split(key, ".")
	for _, a := range allowed {
		ap := strings.Split(a, ".")
		if len(ap) != len(parts) {
			continue
		}
		ok := true
		for i := range ap {
			if ap[i] != "*" && ap[i] != parts[i] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
