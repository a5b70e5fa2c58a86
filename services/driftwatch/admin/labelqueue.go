package admin

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/monitor/labeling"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

// labelQueueConfig is driftwatch label-queue's: the monitor it asks, how
// it authenticates, and what it asks for.
type labelQueueConfig struct {
	config.Logging   `yaml:",inline"`
	MonitorURL       string `yaml:"monitor_url" env:"DRIFTWATCH_MONITOR_URL" flag:"monitor-url" help:"the monitor's base URL: the rows come from its API (GET /api/v1/models/M/labeling-queue), which records what it hands out"`
	config.APIClient `yaml:",inline"`
	Model            string        `yaml:"model" flag:"model" help:"model whose unlabelled inferences to hand out (required)"`
	N                int           `yaml:"n" flag:"n" help:"rows wanted (at most the monitor's labeling.max_rows)"`
	Strategy         string        `yaml:"strategy" flag:"strategy" help:"uncertainty, drift or random (docs/labeling.md)"`
	Assignee         string        `yaml:"assignee" flag:"assignee" help:"who labels them, recorded with the rows"`
	Output           string        `yaml:"output" flag:"o" help:"file to write: FILE.jsonl (one JSON row a line) or FILE.csv (one column per feature and an empty actual_label to fill); - writes JSON lines to stdout"`
	Timeout          time.Duration `yaml:"timeout" flag:"timeout" help:"longest the monitor may take to answer"`
}

func (c *labelQueueConfig) Validate() error {
	var errs []error
	if c.Model == "" {
		errs = append(errs, errors.New("model: required (-model M)"))
	} else if !modelID.MatchString(c.Model) {
		errs = append(errs, fmt.Errorf("model: %q is not a model id (1-128 letters, digits and ._:-)", c.Model))
	}
	if c.N < 1 {
		errs = append(errs, fmt.Errorf("n: must be at least 1, got %d", c.N))
	}
	if _, err := labeling.ParseStrategy(c.Strategy); err != nil {
		errs = append(errs, fmt.Errorf("strategy: %w", err))
	}
	if _, err := outputFormat(c.Output); err != nil {
		errs = append(errs, err)
	}
	if u, err := url.Parse(c.MonitorURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("monitor_url: want http(s)://host:port of the monitor, got %q", c.MonitorURL))
	} else if u.User != nil {
		errs = append(errs, errors.New("monitor_url: must not hold a user or password (give the token with -api-token-file or DRIFTWATCH_API_TOKEN)"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout: must be positive, got %s", c.Timeout))
	}
	return errors.Join(append(errs, c.Logging.Validate(), c.APIClient.Validate())...)
}

// outputFormat is "jsonl" or "csv" by the output's extension.
func outputFormat(out string) (string, error) {
	switch {
	case out == "-" || strings.HasSuffix(out, ".jsonl"):
		return "jsonl", nil
	case strings.HasSuffix(out, ".csv"):
		return "csv", nil
	}
	return "", fmt.Errorf("o: want FILE.jsonl, FILE.csv or - (stdout), got %q", out)
}

// modelID is the producers' contract's model id.
var modelID = regexp.MustCompile(schemas.ModelIDPattern)

func labelQueueCommand() command.Command {
	return command.Command{
		Name:    "label-queue",
		Summary: "hand out a model's unlabelled inferences for labelling, chosen where labels matter most, to a JSON-lines or CSV file",
		Usage: `driftwatch label-queue -model M -n N -o rows.jsonl|rows.csv asks the monitor
(-monitor-url, default ` + defaultMonitorURL + `) for N unlabelled inferences of
model M (GET /api/v1/models/M/labeling-queue): a share drawn at random
(labeling.random_share, 0.2 by default), the rest drawn with probability
proportional to their uncertainty, raised for rows in slices and feature
ranges that drifted (-strategy uncertainty; drift: the drift factor alone;
random: all at random). The monitor records the rows in labeling_queue
(with -assignee, the stratum and each row's inclusion probability) and
hands none of them out again within labeling.reissue_after.

Each row carries its prediction_id: send its label to the outcomes topic
(or serve's POST /v1/models/M/outcomes) under that id, as any label. The CSV has one
column per feature and an empty actual_label column to fill. The file
holds the features as stored (after ingest's personal-data rules) and is
written with mode 0600; see docs/labeling.md.

The monitor's API wants a write token (-api-token-file FILE or
DRIFTWATCH_API_TOKEN): handing rows out is a write.`,
		Config: func() config.Validator {
			return &labelQueueConfig{Logging: config.DefaultLogging(), MonitorURL: defaultMonitorURL, N: 100, Output: "-", Timeout: time.Minute}
		},
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			return labelQueue(ctx, c.(*labelQueueConfig), env)
		},
	}
}

// labelQueue asks the monitor for the rows and writes them.
func labelQueue(ctx context.Context, cfg *labelQueueConfig, env command.Env) error {
	tok, err := cfg.APIClient.Token()
	if err != nil {
		return err
	}
	base := strings.TrimRight(cfg.MonitorURL, "/")
	q := url.Values{"limit": {strconv.Itoa(cfg.N)}, "strategy": {cmp.Or(cfg.Strategy, string(labeling.Uncertainty))}}
	if cfg.Assignee != "" {
		q.Set("assignee", cfg.Assignee)
	}
	u := base + "/api/v1/models/" + url.PathEscape(cfg.Model) + "/labeling-queue?" + q.Encode()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("monitor_url: %w", err)
	}
	// A GET that writes: the monitor's guard wants the JSON type, as for
	// every write.
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the monitor at %s is unreachable (is it running? -monitor-url names it): %w", base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("read the monitor's answer: %w", err)
	}
	var b struct {
		monitor.LabelingBatch
		Error string `json:"error"`
	}
	_ = json.Unmarshal(raw, &b)
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		hint := "give a write token with -api-token-file FILE or DRIFTWATCH_API_TOKEN"
		if tok != "" {
			hint = "the token given is not a write token of the monitor's api_tokens_file"
		}
		return fmt.Errorf("the monitor refused the request (%s): %s; %s", resp.Status, b.Error, hint)
	case resp.StatusCode >= 300:
		return fmt.Errorf("the monitor answered %s: %s", resp.Status, strings.TrimSpace(cmp.Or(b.Error, string(raw))))
	case b.BatchID == "":
		return fmt.Errorf("the monitor answered %s without a batch: %.200s", resp.Status, raw)
	}
	format, _ := outputFormat(cfg.Output)
	var w io.Writer = env.Stdout
	var f *os.File
	if cfg.Output != "-" {
		// The rows hold features: readable by the owner only.
		if f, err = os.OpenFile(cfg.Output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return fmt.Errorf("write the labeling rows: %w", err)
		}
		defer f.Close()
		w = f
	}
	if format == "csv" {
		err = writeLabelCSV(w, &b.LabelingBatch)
	} else {
		err = writeLabelJSONL(w, &b.LabelingBatch)
	}
	if err == nil && f != nil {
		err = f.Close()
	}
	if err != nil {
		return fmt.Errorf("write the labeling rows to %s: %w", cfg.Output, err)
	}
	if cfg.Output != "-" {
		fmt.Fprintf(env.Stdout, "%d rows of %s (%d random, %d targeted, from a pool of %d) handed out as batch %s to %s; focus: %s; written to %s\n",
			len(b.Rows), b.ModelID, b.RandomRows, b.TargetedRows, b.PoolRows, b.BatchID, cmp.Or(b.Assignee, "(no assignee)"),
			cmp.Or(strings.Join(b.Focus, ", "), "nothing drifted"), filepath.Clean(cfg.Output))
	}
	return nil
}

// labelLine is a JSON line: the API's row and its batch.
type labelLine struct {
	BatchID string `json:"batch_id"`
	monitor.LabelingRow
}

func writeLabelJSONL(w io.Writer, b *monitor.LabelingBatch) error {
	enc := json.NewEncoder(w)
	for _, r := range b.Rows {
		if err := enc.Encode(labelLine{BatchID: b.BatchID, LabelingRow: r}); err != nil {
			return err
		}
	}
	return nil
}

// labelCSVColumns are the CSV's fixed columns; the features follow, one
// column each (feature.NAME, sorted), and actual_label last.
var labelCSVColumns = []string{"prediction_id", "model_id", "model_version", "event_id", "timestamp", "batch_id", "stratum", "inclusion_probability",
	"uncertainty", "weight", "reasons", "prediction_label", "prediction_score", "prediction_value", "prediction_probabilities", "segment"}

func writeLabelCSV(w io.Writer, b *monitor.LabelingBatch) error {
	var names []string
	for _, r := range b.Rows {
		for k := range r.Features {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	cw := csv.NewWriter(w)
	head := slices.Clone(labelCSVColumns)
	for _, n := range names {
		head = append(head, "feature."+n)
	}
	if err := cw.Write(append(head, "actual_label")); err != nil {
		return err
	}
	num := func(p *float64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatFloat(*p, 'g', -1, 64)
	}
	for _, r := range b.Rows {
		probs, _ := json.Marshal(r.PredictionProbabilities)
		seg, _ := json.Marshal(r.Segment)
		rec := []string{r.PredictionID, r.ModelID, r.ModelVersion, r.EventID, r.Timestamp.UTC().Format(time.RFC3339Nano), b.BatchID, string(r.Stratum),
			strconv.FormatFloat(r.InclusionProbability, 'g', -1, 64), strconv.FormatFloat(r.Uncertainty, 'g', -1, 64), strconv.FormatFloat(r.Weight, 'g', -1, 64),
			strings.Join(r.Reasons, "; "), cmp.Or(deref(r.PredictionLabel), ""), num(r.PredictionScore), num(r.PredictionValue), string(probs), string(seg)}
		for _, n := range names {
			switch v := r.Features[n].(type) {
			case nil:
				rec = append(rec, "")
			case float64:
				rec = append(rec, strconv.FormatFloat(v, 'g', -1, 64))
			default:
				rec = append(rec, fmt.Sprint(v))
			}
		}
		if err := cw.Write(append(rec, "")); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
