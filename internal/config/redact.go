package config

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// Redacted is what a secret is replaced with in a text.
const Redacted = "[REDACTED]"

// SecretParam reports whether a URL query parameter named key carries a
// credential (password, passwd, pwd, secret, token, sasl_password, …),
// so that it is hidden like the password of the URL's userinfo.
func SecretParam(key string) bool {
	k := strings.ToLower(key)
	return k == "pwd" || k == "pass" || strings.Contains(k, "password") || strings.Contains(k, "passwd") ||
		strings.Contains(k, "secret") || strings.Contains(k, "token")
}

// userinfoRE finds the password of a URL's userinfo when the URL does not
// parse (scheme://user:password@host).
var userinfoRE = regexp.MustCompile(`://[^/?#@:]*:([^/?#@]+)@`)

// URLUser returns the user name of a URL's userinfo
// (scheme://user:password@host, host lists accepted), "" when it has none
// or raw is not a URL.
func URLUser(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return ""
	}
	rest := raw[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return ""
	}
	name, _, _ := strings.Cut(rest[:at], ":")
	if u, err := url.PathUnescape(name); err == nil {
		return u
	}
	return name
}

// URLSecrets returns the credentials written into a URL: the password of
// its userinfo (scheme://user:password@host, host lists accepted) and the
// value of every query parameter SecretParam names (?password=…). A string
// that is not a URL has none.
func URLSecrets(raw string) []string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return nil
	}
	var out []string
	// url.Parse refuses a host list (a:9000,b:9000); only the userinfo
	// and the query matter here, so the authority's hosts are replaced.
	rest := raw[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	auth := rest[:end]
	masked := raw
	if at := strings.LastIndex(auth, "@"); at >= 0 {
		masked = raw[:i+3] + auth[:at+1] + "placeholder" + rest[end:]
	} else {
		masked = raw[:i+3] + "placeholder" + rest[end:]
	}
	u, err := url.Parse(masked)
	if err != nil {
		for _, m := range userinfoRE.FindAllStringSubmatch(raw, -1) {
			out = append(out, m[1])
		}
		return out
	}
	if u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			out = append(out, p)
		}
	}
	for k, vs := range u.Query() {
		if SecretParam(k) {
			for _, v := range vs {
				if v != "" {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// SecretValues returns every secret a configuration holds: each non-empty
// [Secret] field, anywhere in cfg (embedded, nested, in maps and slices),
// and each credential written into a URL-valued string field
// (URLSecrets), with their URL-escaped forms — the text a URL, a log line
// or an error may show. It is generic, so a Secret field added later is
// covered without a change here. Longest first, so a secret that contains
// another is replaced whole.
func SecretValues(cfg any) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		for _, v := range []string{s, url.QueryEscape(s), url.PathEscape(s), (&url.URL{User: url.UserPassword("", s)}).User.String()[1:]} {
			if v != "" && !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		if !v.IsValid() {
			return
		}
		if v.Type() == secretType {
			if s := v.String(); s != "" {
				add(s)
			}
			return
		}
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Map:
			it := v.MapRange()
			for it.Next() {
				walk(it.Value())
			}
		case reflect.String:
			for _, s := range URLSecrets(v.String()) {
				add(s)
			}
		}
	}
	walk(reflect.ValueOf(cfg))
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// Redactor replaces every configured secret in a text with [Redacted]. The
// zero value and nil redact nothing.
type Redactor struct {
	secrets []string
	r       *strings.Replacer
}

// NewRedactor returns a Redactor of cfg's SecretValues.
func NewRedactor(cfg any) *Redactor { return RedactorOf(SecretValues(cfg)) }

// RedactorOf returns a Redactor of the given secrets; empty ones are
// ignored.
func RedactorOf(secrets []string) *Redactor {
	r := &Redactor{}
	var pairs []string
	for _, s := range slices.Clone(secrets) {
		if s != "" && !slices.Contains(r.secrets, s) {
			r.secrets = append(r.secrets, s)
		}
	}
	slices.SortStableFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	for _, s := range r.secrets {
		pairs = append(pairs, s, Redacted)
	}
	if len(pairs) > 0 {
		r.r = strings.NewReplacer(pairs...)
	}
	return r
}

// Secrets returns the secrets r hides, longest first.
func (r *Redactor) Secrets() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.secrets)
}

// Longest is the length of the longest secret, 0 when there is none.
func (r *Redactor) Longest() int {
	if r == nil || len(r.secrets) == 0 {
		return 0
	}
	return len(r.secrets[0])
}

// Redact returns s with every secret replaced by [Redacted].
func (r *Redactor) Redact(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// Error returns err with its message redacted; errors.Is and errors.As
// still see the original chain. It returns nil for nil.
func (r *Redactor) Error(err error) error {
	if err == nil || r == nil || r.r == nil {
		return err
	}
	msg := err.Error()
	if red := r.Redact(msg); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// Handler wraps h so that the message and every attribute value of each
// record (an error's or a Stringer's text included) has r's secrets
// replaced: a log line never shows one, whatever logged it.
func (r *Redactor) Handler(h slog.Handler) slog.Handler {
	if r == nil || r.r == nil {
		return h
	}
	return &redactHandler{r: r, h: h}
}

type redactHandler struct {
	r *Redactor
	h slog.Handler
}

func (h *redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.Redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = h.attr(a)
	}
	return &redactHandler{r: h.r, h: h.h.WithAttrs(red)}
}

func (h *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{r: h.r, h: h.h.WithGroup(name)}
}

func (h *redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.Redact(v.String()))
	case slog.KindGroup:
		gs := v.Group()
		red := make([]any, len(gs))
		for i, g := range gs {
			red[i] = h.attr(g)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		var text string
		switch x := v.Any().(type) {
		case error:
			text = x.Error()
		case fmt.Stringer:
			text = x.String()
		default:
			text = fmt.Sprint(x)
		}
		if red := h.r.Redact(text); red != text {
			return slog.String(a.Key, red)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
