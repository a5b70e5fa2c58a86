package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/retrain/serve"
)

// client talks to serve, the monitor and Alertmanager over their HTTP APIs.
type client struct {
	http                         *http.Client
	serve, monitor, alertmanager string
	token                        string
}

func (c *client) do(ctx context.Context, method, u string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, u, err)
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %.200s", method, u, resp.Status, strings.TrimSpace(string(raw)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode the answer: %w", method, u, err)
	}
	return nil
}

func (c *client) models(ctx context.Context) ([]serve.ModelInfo, error) {
	var out struct {
		Models []serve.ModelInfo `json:"models"`
	}
	err := c.do(ctx, http.MethodGet, c.serve+"/v1/models", nil, &out)
	return out.Models, err
}

func (c *client) predict(ctx context.Context, model string, rows []map[string]any) ([]serve.Prediction, error) {
	type row struct {
		Features map[string]any `json:"features"`
	}
	in := struct {
		Rows []row `json:"rows"`
	}{}
	for _, r := range rows {
		in.Rows = append(in.Rows, row{Features: r})
	}
	var out struct {
		Predictions []serve.Prediction `json:"predictions"`
	}
	err := c.do(ctx, http.MethodPost, c.serve+"/v1/models/"+url.PathEscape(model)+"/predict", in, &out)
	return out.Predictions, err
}

func (c *client) outcome(ctx context.Context, model, predictionID, label string) error {
	in := map[string]string{"prediction_id": predictionID, "label": label}
	return c.do(ctx, http.MethodPost, c.serve+"/v1/models/"+url.PathEscape(model)+"/outcomes", in, nil)
}

func (c *client) results(ctx context.Context, model string) ([]monitor.ResultRow, error) {
	var out struct {
		Results []monitor.ResultRow `json:"results"`
	}
	err := c.do(ctx, http.MethodGet, c.monitor+"/api/v1/models/"+url.PathEscape(model)+"/results", nil, &out)
	return out.Results, err
}

func (c *client) triggers(ctx context.Context, model string) ([]monitor.TriggerRow, error) {
	var out struct {
		Triggers []monitor.TriggerRow `json:"triggers"`
	}
	err := c.do(ctx, http.MethodGet, c.monitor+"/api/v1/triggers?model="+url.QueryEscape(model), nil, &out)
	return out.Triggers, err
}

func (c *client) champion(ctx context.Context, model string) (string, error) {
	var out struct {
		Champion string `json:"champion"`
	}
	err := c.do(ctx, http.MethodGet, c.monitor+"/api/v1/models/"+url.PathEscape(model)+"/versions", nil, &out)
	return out.Champion, err
}

func (c *client) performance(ctx context.Context, model, metric string) ([]monitor.PerformanceRow, error) {
	var out struct {
		Performance []monitor.PerformanceRow `json:"performance"`
	}
	err := c.do(ctx, http.MethodGet, c.monitor+"/api/v1/models/"+url.PathEscape(model)+"/performance?metric="+url.QueryEscape(metric), nil, &out)
	return out.Performance, err
}

// amAlert is one alert of Alertmanager's API v2.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

func (c *client) alerts(ctx context.Context, model string) ([]amAlert, error) {
	var out []amAlert
	// Inhibited alerts too: a page about the model (its performance
	// dropped) inhibits its drift warnings, which still reached
	// Alertmanager.
	q := url.Values{"filter": {fmt.Sprintf("model=%q", model)}}
	err := c.do(ctx, http.MethodGet, c.alertmanager+"/api/v2/alerts?"+q.Encode(), nil, &out)
	return out, err
}
