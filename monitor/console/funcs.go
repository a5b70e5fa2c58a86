package console

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"
)

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"timep": func(t *time.Time) string {
		if t == nil {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04Z")
	},
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"age": func(d time.Duration) string {
		switch {
		case d < 0:
			return "—"
		case d < time.Minute:
			return "now"
		case d < time.Hour:
			return fmt.Sprintf("%dm ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%.1fh ago", d.Hours())
		default:
			return fmt.Sprintf("%.0fd ago", d.Hours()/24)
		}
	},
	"num": func(p *float64) string {
		if p == nil || math.IsNaN(*p) {
			return "—"
		}
		return fmt.Sprintf("%.4g", *p)
	},
	"f": func(v float64) string {
		if math.IsNaN(v) {
			return "—"
		}
		return fmt.Sprintf("%.4g", v)
	},
	"pct": func(v float64) string { return fmt.Sprintf("%.0f%%", v*100) },
	"href": func(model, feature string, end time.Time) string {
		return modelHref(model, feature, end)
	},
	"hrefl": func(model, feature string) string { return modelHref(model, feature, time.Time{}) },
	"metrics": func(m map[string]*float64) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var parts []string
		for _, k := range keys {
			v := "—"
			if m[k] != nil {
				v = fmt.Sprintf("%.4g", *m[k])
			}
			parts = append(parts, k+" "+v)
		}
		return strings.Join(parts, ", ")
	},
	"eqt": func(a, b time.Time) bool { return a.Equal(b) },
	"sql": func(s []string) string { return strings.Join(s, ";\n\n") },
}
