package deploy

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
)

// GrafanaDashboards holds deploy/grafana/dashboards/*.json, the dashboards
// deploy/grafana/provisioning loads (docs/grafana.md).
//
//go:embed grafana/dashboards/*.json
var GrafanaDashboards embed.FS

// Dashboard is the part of a Grafana dashboard's JSON the tests check.
type Dashboard struct {
	File       string `json:"-"`
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
	Panels []Panel `json:"panels"`
	Links  []Link  `json:"links"`
}

// Link is a dashboard link; URL may use the dashboard's variables.
type Link struct {
	Title string `json:"title"`
	Type  string `json:"type"`
	URL   string `json:"url"`
}

// Variable is a dashboard's template variable.
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Definition string          `json:"definition"`
	Query      json.RawMessage `json:"query"`
}

// Panel is one panel; a row's panels are in Panels when it is collapsed.
type Panel struct {
	ID         int              `json:"id"`
	Type       string           `json:"type"`
	Title      string           `json:"title"`
	Datasource *DatasourceRef   `json:"datasource"`
	Targets    []Target         `json:"targets"`
	Panels     []Panel          `json:"panels"`
	GridPos    map[string]int   `json:"gridPos"`
	Links      []map[string]any `json:"links"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string         `json:"refId"`
	Datasource *DatasourceRef `json:"datasource"`
	Expr       string         `json:"expr"`
}

// DatasourceRef names a data source by type and uid (or a variable).
type DatasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Dashboards parses every dashboard in GrafanaDashboards, in file-name
// order.
func Dashboards() ([]Dashboard, error) {
	files, err := fs.Glob(GrafanaDashboards, "grafana/dashboards/*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []Dashboard
	for _, f := range files {
		b, err := GrafanaDashboards.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var d Dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("parse %s: %w", f, err)
		}
		d.File = path.Base(f)
		out = append(out, d)
	}
	return out, nil
}

// AllPanels returns the dashboard's panels that are not rows, those inside
// collapsed rows included.
func (d Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			out = append(out, p)
		}
	}
	walk(d.Panels)
	return out
}
