package admin

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/signing"
	"github.com/driftwatch/driftwatch/retrain"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

type retrainConfig struct {
	config.Kafka   `yaml:",inline"`
	config.Logging `yaml:",inline"`
	// TriggerSigning signs the trigger, as the monitor does, for a
	// trainer that accepts only signed ones.
	config.TriggerSigning `yaml:",inline"`
	// With MonitorURL the trigger goes through the monitor's API (its
	// gate, record and signature) with APIClient's token.
	MonitorURL       string `yaml:"monitor_url" env:"DRIFTWATCH_MONITOR_URL" flag:"monitor-url" help:"the monitor's base URL (http://127.0.0.1:9102): post the trigger to its API (daily maximum, recorded, signed by the monitor) instead of publishing it to Kafka"`
	config.APIClient `yaml:",inline"`
	Model            string `yaml:"model" flag:"model" help:"model to retrain (required)"`
	Reason           string `yaml:"reason" flag:"reason" help:"free text recorded as the trigger's policy"`
}

func (c *retrainConfig) Validate() error {
	var errs []error
	if c.Model == "" {
		errs = append(errs, errors.New("model: required (-model M)"))
	}
	return errors.Join(append(errs, c.Kafka.Validate(), c.Logging.Validate(), c.TriggerSigning.Validate(), c.APIClient.Validate())...)
}

type modelsConfig struct {
	config.ClickHouse `yaml:",inline"`
	config.Logging    `yaml:",inline"`
	Model             string `yaml:"model" flag:"model" help:"list only this model's versions"`
	JSON              bool   `yaml:"json" flag:"json" help:"print JSON instead of a table"`
}

func (c *modelsConfig) Validate() error {
	return errors.Join(c.ClickHouse.Validate(), c.Logging.Validate())
}

func retrainCommand() command.Command {
	return command.Command{
		Name:    "retrain",
		Summary: "publish a manual retrain trigger for a model (the trainer service runs it)",
		Usage: `driftwatch retrain -model M publishes a manual retrain trigger for model M to
<prefix>retrain-triggers. The trainer service runs it ahead of other triggers
(manual has the highest priority); follow it with driftwatch models -model M.
With trigger_signing_key_file (DRIFTWATCH_TRIGGER_SIGNING_KEY_FILE) the
trigger is signed with that key, as the monitor signs its own; a trainer
with a key dead-letters unsigned triggers.

With -monitor-url the trigger is posted to the monitor's API instead
(POST /api/v1/models/M/triggers), which applies its daily maximum,
records and signs it; a monitor with api_tokens_file wants a write token
(-api-token-file FILE or DRIFTWATCH_API_TOKEN).`,
		Config: func() config.Validator {
			return &retrainConfig{Kafka: config.DefaultKafka(), Logging: config.DefaultLogging()}
		},
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			cfg := c.(*retrainConfig)
			if cfg.MonitorURL != "" {
				return postTrigger(ctx, cfg, env)
			}
			trig := schemas.NewManualTrigger(cfg.Model, cfg.Reason, time.Now())
			if err := trig.Validate(); err != nil {
				return fmt.Errorf("manual trigger: %w", err)
			}
			raw, err := json.Marshal(trig)
			if err != nil {
				return err
			}
			kopts, err := kafkaio.FromConfig(cfg.Kafka, "driftwatch-cli", nil)
			if err != nil {
				return err
			}
			// A writer retries a refused connection as it would a broker
			// that is down; ask once first, so a wrong password or an
			// untrusted certificate is the error, at once.
			if err := kafkaio.Ping(ctx, kopts); errors.Is(err, kafkaio.ErrRefused) {
				return fmt.Errorf("publish manual trigger: %w", err)
			}
			key, err := cfg.TriggerSigning.Key()
			if err != nil {
				return fmt.Errorf("trigger_signing_key_file: %w", err)
			}
			msg := kafka.Message{Key: []byte(trig.ModelID), Value: raw,
				Headers: []kafka.Header{{Key: schemas.SchemaHeader, Value: []byte(schemas.KindRetrainTrigger.SchemaName())}}}
			signing.New(key).AddTo(&msg)
			w, err := kafkaio.NewWriter(kopts, schemas.TopicRetrainTriggers)
			if err != nil {
				return err
			}
			defer w.Close()
			if err := w.WriteMessages(ctx, msg); err != nil {
				return fmt.Errorf("publish manual trigger: %w", err)
			}
			fmt.Fprintf(env.Stdout, "published manual retrain trigger %s for %s to %s\n", trig.TriggerID, trig.ModelID, kopts.Topic(schemas.TopicRetrainTriggers))
			return nil
		},
	}
}

func modelsCommand() command.Command {
	return command.Command{
		Name:    "models",
		Summary: "list registered model versions and their status",
		Usage:   `driftwatch models lists the models table: every version, its status (champion, rejected, retired, …), primary metrics and the trigger that produced it.`,
		Config: func() config.Validator {
			return &modelsConfig{ClickHouse: config.DefaultClickHouse(), Logging: config.DefaultLogging()}
		},
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			cfg := c.(*modelsConfig)
			conn, err := chclient.Open(ctx, chclient.FromConfig(cfg.ClickHouse), false)
			if err != nil {
				return err
			}
			defer conn.Close()
			vs, err := retrain.ListVersions(ctx, conn, cfg.Model)
			if err != nil {
				return err
			}
			if cfg.JSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(vs)
			}
			printVersions(env, vs)
			return nil
		},
	}
}

func printVersions(env command.Env, vs []*retrain.Version) {
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tVERSION\tSTATUS\tMETRICS (challenger / champion)\tTRAINER\tTRIGGER\tCREATED")
	for _, v := range vs {
		keys := make([]string, 0, len(v.Metrics))
		for k := range v.Metrics {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var m []string
		for _, k := range keys {
			m = append(m, fmt.Sprintf("%s=%.4f/%.4f", k, v.Metrics[k], v.ChampionMetrics[k]))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ModelID, v.Version, v.Status, strings.Join(m, " "), v.Trainer, v.TriggerID, v.CreatedAt.Format(time.RFC3339))
	}
	tw.Flush()
}

// postTrigger asks the monitor's API for a manual trigger.
func postTrigger(ctx context.Context, cfg *retrainConfig, env command.Env) error {
	tok, err := cfg.APIClient.Token()
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]string{"note": cfg.Reason})
	if err != nil {
		return err
	}
	u := strings.TrimRight(cfg.MonitorURL, "/") + "/api/v1/models/" + url.PathEscape(cfg.Model) + "/triggers"
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("monitor_url: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("post manual trigger to the monitor: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out struct {
		Error   string                  `json:"error"`
		Outcome string                  `json:"outcome"`
		Trigger *schemas.RetrainTrigger `json:"trigger"`
	}
	_ = json.Unmarshal(raw, &out)
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		hint := "give a write token with -api-token-file FILE or DRIFTWATCH_API_TOKEN"
		if tok != "" {
			hint = "the token given is not a write token of the monitor's api_tokens_file"
		}
		return fmt.Errorf("monitor refused the trigger (%s): %s; %s", resp.Status, out.Error, hint)
	case resp.StatusCode >= 300:
		return fmt.Errorf("monitor answered %s: %s", resp.Status, strings.TrimSpace(cmp.Or(out.Error, string(raw))))
	case out.Trigger == nil:
		return fmt.Errorf("monitor answered %s without a trigger: %.200s", resp.Status, raw)
	}
	fmt.Fprintf(env.Stdout, "manual retrain trigger %s for %s: %s by the monitor\n", out.Trigger.TriggerID, out.Trigger.ModelID, out.Outcome)
	return nil
}
