// Package config loads a service's settings in one fixed order — defaults,
// then an optional YAML file (unknown keys are errors), then DRIFTWATCH_*
// environment variables, then command-line flags — and validates the result,
// reporting every bad field at once.
//
// A service describes its settings once, as a struct whose fields carry
// three tags: `yaml:"key"` (the file key), `env:"NAME"` (the environment
// variable, optional) and `flag:"name"` with `help:"text"` (the flag,
// optional). Supported field types are string, bool, int, int64, float64,
// time.Duration, []string (comma-separated in env and flags; a list flag
// given more than once collects every value) and Secret.
// Nested structs without a yaml key (embedded) are walked, so every service
// embeds [Common]. Fields with neither an env nor a flag tag — nested
// sections, maps, lists of structs — are set by the YAML file only.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Secret is a string that never prints: String, YAML output and slog all
// show "<redacted>" when it is set, so a password cannot leak into a log
// line, an error or -check-config output by accident.
type Secret string

// String implements fmt.Stringer with the value hidden.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<redacted>"
}

// GoString hides the value from %#v too.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue implements slog.LogValuer with the value hidden.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalYAML writes the redacted form.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// Reveal returns the secret itself, for handing to a client library.
func (s Secret) Reveal() string { return string(s) }

// Validator is implemented by configuration structs.
type Validator interface {
	// Validate reports every invalid field, each error naming the field by
	// its YAML key, joined with errors.Join.
	Validate() error
}

// Resolver is implemented by a configuration in which a zero value stands
// for a default the service resolves when it starts (the trainer's empty
// metric is roc_auc or rmse by task, nil guardrails are the task's default
// guardrail, an empty clickhouse_user is the URL's user or "default").
// Resolved returns a copy with every such value resolved, as the service
// will use it; -check-config prints it.
type Resolver interface {
	Resolved() any
}

// Loaded describes how a configuration was obtained.
type Loaded struct {
	// File is the YAML file read, or "" when none was given.
	File string
	// CheckOnly is true when -check-config was given: the caller should
	// print the configuration and exit without starting.
	CheckOnly bool
}

// LoadOptions are the inputs of Load, injected so tests need no process state.
type LoadOptions struct {
	// Name is the program name used in usage output.
	Name string
	// Args are the command-line arguments without the program name.
	Args []string
	// LookupEnv reads the environment; os.LookupEnv when nil.
	LookupEnv func(string) (string, bool)
	// Output receives -help text; os.Stderr when nil.
	Output io.Writer
	// Usage is printed above the flag list by -help.
	Usage string
}

// ErrHelp is returned by Load when -h or -help was given; the usage text
// has already been written.
var ErrHelp = flag.ErrHelp

// Load fills cfg, which must be a pointer to a struct already holding the
// defaults, from the YAML file named by -config (or DRIFTWATCH_CONFIG), the
// environment and the flags, in that order, and then calls cfg.Validate.
func Load(cfg Validator, opts LoadOptions) (Loaded, error) {
	var res Loaded
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Output == nil {
		opts.Output = os.Stderr
	}
	rv := reflect.ValueOf(cfg)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		panic("BUG: config.Load needs a pointer to a struct")
	}
	fields, err := collect(rv.Elem())
	if err != nil {
		panic("BUG: " + err.Error())
	}

	// First pass: flags bound to a scratch copy, only to learn -config and
	// -check-config and to reject bad flags before anything else happens.
	scratch := reflect.New(rv.Elem().Type())
	scratch.Elem().Set(rv.Elem())
	scratchFields, _ := collect(scratch.Elem()) // the same type collect accepted above
	fs, file, check := newFlagSet(opts, scratchFields)
	if err := fs.Parse(opts.Args); err != nil {
		return res, err
	}
	if fs.NArg() > 0 {
		return res, fmt.Errorf("unexpected arguments %q (settings are flags, see -help)", fs.Args())
	}
	res.CheckOnly = *check
	res.File = *file
	if res.File == "" {
		res.File, _ = opts.LookupEnv("DRIFTWATCH_CONFIG")
	}

	if res.File != "" {
		if err := loadYAML(res.File, cfg); err != nil {
			return res, err
		}
	}
	if err := applyEnv(fields, opts.LookupEnv); err != nil {
		return res, err
	}
	// Second pass: the same flags bound to the real struct, so they win.
	fs2, _, _ := newFlagSet(opts, fields)
	if err := fs2.Parse(opts.Args); err != nil {
		return res, err
	}
	if err := cfg.Validate(); err != nil {
		return res, fmt.Errorf("invalid configuration:\n%w", indent(err))
	}
	return res, nil
}

// Dump writes cfg as YAML with secrets redacted, for -check-config: Secret
// fields show "<redacted>", and every secret cfg holds (SecretValues: a
// password inside a URL's userinfo or ?password= too) shows [REDACTED]
// wherever it appears.
//
// When cfg is a [Resolver], Dump prints cfg.Resolved(): the configuration
// in effect, each zero value that stands for a default replaced by that
// default, so that the output read back as a -config file configures the
// service exactly as cfg does. An embedded [ClickHouse] always shows
// clickhouse_user as the clients will use it (EffectiveUser).
func Dump(w io.Writer, cfg any) error {
	red := NewRedactor(cfg)
	if r, ok := cfg.(Resolver); ok {
		cfg = r.Resolved()
	}
	out, err := yaml.Marshal(withEffectiveUser(cfg))
	if err != nil {
		return fmt.Errorf("encode configuration: %w", err)
	}
	out = []byte(red.Redact(string(out)))
	_, err = w.Write(out)
	return err
}

var clickHouseType = reflect.TypeOf(ClickHouse{})

// withEffectiveUser returns cfg, or a copy of it when it embeds
// [ClickHouse], with clickhouse_user as the clients will use it
// (EffectiveUser), so that every command's -check-config shows it.
func withEffectiveUser(cfg any) any {
	rv := reflect.ValueOf(cfg)
	if rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return cfg
	}
	cp := reflect.New(rv.Type()).Elem()
	cp.Set(rv)
	var set func(v reflect.Value) bool
	set = func(v reflect.Value) bool {
		if v.Type() == clickHouseType {
			ch := v.Addr().Interface().(*ClickHouse)
			ch.ClickHouseUser = ch.EffectiveUser()
			return true
		}
		found := false
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.Anonymous && f.IsExported() && f.Type.Kind() == reflect.Struct {
				found = set(v.Field(i)) || found
			}
		}
		return found
	}
	if !set(cp) {
		return cfg
	}
	return cp.Addr().Interface()
}

func loadYAML(path string, cfg any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) { // an empty file sets nothing
			return nil
		}
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

type field struct {
	v    reflect.Value
	yaml string
	env  string
	flag string
	help string
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	secretType   = reflect.TypeOf(Secret(""))
)

func collect(v reflect.Value) ([]field, error) {
	var out []field
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		fv := v.Field(i)
		key := strings.Split(sf.Tag.Get("yaml"), ",")[0]
		if key == "-" {
			continue
		}
		if sf.Tag.Get("env") == "" && sf.Tag.Get("flag") == "" && sf.Type.Kind() != reflect.Struct {
			continue // a YAML-only setting (maps, lists of structs): the file sets it
		}
		if sf.Type.Kind() == reflect.Struct && sf.Type != durationType && key != "" {
			continue // a nested YAML section without flags
		}
		if sf.Type.Kind() == reflect.Struct && sf.Type != durationType {
			sub, err := collect(fv)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		if !supported(sf.Type) {
			return nil, fmt.Errorf("config field %s has unsupported type %s", sf.Name, sf.Type)
		}
		out = append(out, field{v: fv, yaml: key, env: sf.Tag.Get("env"), flag: sf.Tag.Get("flag"), help: sf.Tag.Get("help")})
	}
	return out, nil
}

func supported(t reflect.Type) bool {
	if t == durationType || t == secretType {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Float64:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	return false
}

func newFlagSet(opts LoadOptions, fields []field) (*flag.FlagSet, *string, *bool) {
	fs := flag.NewFlagSet(opts.Name, flag.ContinueOnError)
	fs.SetOutput(opts.Output)
	file := fs.String("config", "", "YAML configuration `file` (also DRIFTWATCH_CONFIG) holding this service's keys only (one file per service; another service's key is an unknown key, an error); see docs/configuration.md")
	check := fs.Bool("check-config", false, "load and validate the configuration, print it as it will be used (defaults resolved, secrets redacted; valid as a -config file), and exit")
	for _, f := range fields {
		if f.flag == "" {
			continue
		}
		help := f.help
		if f.env != "" {
			help += " [" + f.env + "]"
		}
		fs.Var(&flagValue{f: f}, f.flag, help)
	}
	fs.Usage = func() {
		if opts.Usage != "" {
			fmt.Fprintln(fs.Output(), strings.TrimRight(opts.Usage, "\n"))
			fmt.Fprintln(fs.Output())
		}
		fmt.Fprintf(fs.Output(), "Usage of %s (precedence: defaults < -config file < environment < flags):\n", opts.Name)
		fs.PrintDefaults()
	}
	return fs, file, check
}

func applyEnv(fields []field, lookup func(string) (string, bool)) error {
	var errs []error
	for _, f := range fields {
		if f.env == "" {
			continue
		}
		raw, ok := lookup(f.env)
		if !ok {
			continue
		}
		if err := set(f.v, raw); err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", f.env, err))
		}
	}
	return errors.Join(errs...)
}

// flagValue adapts a struct field to flag.Value. A list flag given more
// than once collects every value (-policy a.yaml -policy b.yaml), the
// first replacing what the file and the environment gave.
type flagValue struct {
	f    field
	seen bool
}

func (fv *flagValue) String() string {
	if fv == nil || !fv.f.v.IsValid() || fv.f.v.IsZero() {
		return "" // flag.PrintDefaults shows no default for zero values
	}
	return format(fv.f.v)
}

func (fv *flagValue) Set(s string) error {
	if fv.f.v.Kind() == reflect.Slice && fv.seen {
		before := fv.f.v.Interface().([]string)
		if err := set(fv.f.v, s); err != nil {
			return err
		}
		fv.f.v.Set(reflect.ValueOf(append(before, fv.f.v.Interface().([]string)...)))
		return nil
	}
	fv.seen = true
	return set(fv.f.v, s)
}

// IsBoolFlag lets boolean fields be given as plain -flag.
func (fv *flagValue) IsBoolFlag() bool { return fv.f.v.Kind() == reflect.Bool }

func format(v reflect.Value) string {
	switch {
	case v.Type() == secretType:
		return Secret(v.String()).String()
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.Slice:
		return strings.Join(v.Interface().([]string), ",")
	}
	return fmt.Sprint(v.Interface())
}

func set(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 30s or 5m", s)
		}
		v.SetInt(int64(d))
		return nil
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a boolean (true or false)", s)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		v.SetInt(n)
	case v.Kind() == reflect.Float64:
		x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(x)
	case v.Kind() == reflect.Slice:
		var items []string
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("BUG: unsupported kind %s", v.Kind())
	}
	return nil
}

func indent(err error) error {
	var b strings.Builder
	for i, line := range strings.Split(err.Error(), "\n") {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("  " + line)
	}
	return &indented{msg: b.String(), err: err}
}

type indented struct {
	msg string
	err error
}

func (e *indented) Error() string { return e.msg }
func (e *indented) Unwrap() error { return e.err }
