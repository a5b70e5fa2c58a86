// Package console is driftwatch's web console: server-rendered HTML pages
// with SVG charts (internal/svgchart) that show what drifted, where and
// why, and what the trainer did. The monitor serves it under /ui/ on its
// own http_addr, behind the same API protection, and the console reads
// the monitor's JSON API in-process: it is given the API as an
// http.Handler, issues GET requests to it and decodes the answers, so a
// page shows exactly what an API client would get. `driftwatch report`
// renders the same model page into one self-contained file through
// RemoteAPI. Templates and the stylesheet are embedded; pages need no
// JavaScript and make no request beyond the page itself (the stylesheet
// is inline; /ui/static/console.css serves it too).
//
// Pages (docs/console.md):
//
//	/ui/                                         overview of every model (?sort=&q=)
//	/ui/models/{model}?feature=F&window_end=T    a model's drift, distributions, quality, performance, correlations, importance ranking, slices
//	/ui/models/{model}/training                  training runs and versions
//	/ui/triggers?model=M                         retrain triggers with their evidence
package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"time"
)

//go:embed templates/*.html
var templatesFS embed.FS

//go:embed static/console.css
var stylesheet string

// Options configure a Console.
type Options struct {
	// API is the monitor's JSON API (monitor.API(), or RemoteAPI).
	API http.Handler
	// Now is the clock freshness is judged by (time.Now when nil).
	Now func() time.Time
	// Windows is how many windows the drift heatmap and the score
	// history show (24 when 0).
	Windows int
}

// Console renders the console's pages.
type Console struct {
	api     http.Handler
	now     func() time.Time
	windows int
	tmpl    *template.Template
	mux     *http.ServeMux
}

// New returns a Console reading opts.API.
func New(opts Options) (*Console, error) {
	if opts.API == nil {
		return nil, errors.New("console: Options.API is required")
	}
	c := &Console{api: opts.API, now: opts.Now, windows: opts.Windows}
	if c.now == nil {
		c.now = time.Now
	}
	if c.windows <= 0 {
		c.windows = 24
	}
	t, err := template.New("").Funcs(funcs).ParseFS(templatesFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("BUG: console templates: %w", err)
	}
	c.tmpl = t
	c.mux = http.NewServeMux()
	c.mux.HandleFunc("GET /ui/{$}", c.overviewPage)
	c.mux.HandleFunc("GET /ui/models/{model}", c.modelPage)
	c.mux.HandleFunc("GET /ui/models/{model}/training", c.trainingPage)
	c.mux.HandleFunc("GET /ui/triggers", c.triggersPage)
	c.mux.HandleFunc("GET /ui/static/console.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=300")
		_, _ = io.WriteString(w, stylesheet)
	})
	c.mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusMovedPermanently) })
	c.mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, http.StatusNotFound, "error", &page{Title: "Not found", Error: "no console page at " + r.URL.Path + "; start at the overview."})
	})
	return c, nil
}

// ServeHTTP serves the console's pages under /ui/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// page is what every template gets: the layout's fields and the view.
type page struct {
	Title string
	// Report renders a self-contained file: no navigation.
	Report bool
	// CSS is the stylesheet, inline in every page: a page is one request,
	// which also works behind api_tokens_file, where a browser sends the
	// bearer token (through a proxy) with the page only.
	CSS   template.CSS
	Now   time.Time
	Error string
	View  any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	var buf bytes.Buffer
	p.Now, p.CSS = c.now().UTC(), template.CSS(stylesheet)
	if err := c.tmpl.ExecuteTemplate(&buf, name, p); err != nil {
		http.Error(w, "render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// fail renders a page's API failure with the status that says whose it
// is: 404 for an unknown model, 502 for the API's own failures.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, title string, err error) {
	status := http.StatusBadGateway
	var ae *apiError
	switch {
	case errors.Is(err, errNotFound):
		status = http.StatusNotFound
	case errors.As(err, &ae) && ae.Status < 500:
		status = ae.Status
	case errors.Is(err, context.Canceled):
		return
	}
	c.render(w, r, status, "error", &page{Title: title, Error: err.Error()})
}

// Report writes the model page of model for the window ending at or
// before at (the latest when at is zero) as one self-contained HTML
// document: inline CSS and SVG, no scripts, no links to load.
func (c *Console) Report(ctx context.Context, w io.Writer, model string, at time.Time) error {
	v, err := c.model(ctx, model, "", "", at, true)
	if err != nil {
		return err
	}
	p := &page{Title: "driftwatch report: " + model, Report: true, CSS: template.CSS(stylesheet), View: v}
	p.Now = c.now().UTC()
	return c.tmpl.ExecuteTemplate(w, "model", p)
}
