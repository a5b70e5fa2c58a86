package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/schemas"
)

// bootstrap gives a fresh stack its first champion: serve can only
// answer for a model the trainer has registered, and the trainer needs
// labelled history. It writes rows labelled rows of the demo's world, in
// the wire format and backdated over span (each label a second after its
// inference, so they are matured at once), to the inferences and outcomes
// topics, as a producer other than serve would; Run then waits for
// ingest to label them and asks the monitor for a manual trigger. The
// rows' model_version is "bootstrap",
// which no model registers.
func produceBootstrap(ctx context.Context, opts kafkaio.Options, model string, w *world, rows int, span time.Duration, now time.Time) error {
	specs := kafkaio.Specs(opts, schemas.TopicFor(schemas.TopicInferences), schemas.TopicFor(schemas.TopicOutcomes))
	if err := kafkaio.EnsureTopics(ctx, opts, specs); err != nil {
		return fmt.Errorf("create the event topics: %w", err)
	}
	inf := make([]kafka.Message, 0, rows)
	out := make([]kafka.Message, 0, rows)
	start := now.Add(-span)
	for i := range rows {
		f, label := w.row()
		ts := start.Add(time.Duration(float64(span-2*time.Second) * float64(i) / float64(rows))).UTC()
		pid := uuid.NewString()
		ev := schemas.Inference{EventID: uuid.NewString(), ModelID: model, ModelVersion: "bootstrap", PredictionID: pid, Timestamp: ts,
			Numeric: map[string]float64{}, Categorical: map[string]string{},
			Prediction: schemas.Prediction{Score: 0.5, HasScore: true}}
		for k, v := range f {
			switch v := v.(type) {
			case float64:
				ev.Numeric[k] = v
			case string:
				ev.Categorical[k] = v
			}
		}
		raw, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		inf = append(inf, kafka.Message{Key: []byte(model), Value: raw, Headers: []kafka.Header{{Key: schemas.SchemaHeader, Value: []byte(schemas.KindInference.SchemaName())}}})
		oc := schemas.Outcome{EventID: uuid.NewString(), ModelID: model, PredictionID: pid, Timestamp: ts.Add(time.Second),
			Actual: schemas.Actual{Label: label, HasLabel: true}}
		if raw, err = json.Marshal(oc); err != nil {
			return err
		}
		out = append(out, kafka.Message{Key: []byte(model), Value: raw, Headers: []kafka.Header{{Key: schemas.SchemaHeader, Value: []byte(schemas.KindOutcome.SchemaName())}}})
	}
	for _, b := range []struct {
		topic string
		msgs  []kafka.Message
	}{{schemas.TopicInferences, inf}, {schemas.TopicOutcomes, out}} {
		wr, err := kafkaio.NewWriter(opts, b.topic) // it adds the prefix
		if err != nil {
			return err
		}
		// A topic just created may not be known to every broker yet
		// (UnknownTopicOrPartition): try again for a while.
		for try := 0; ; try++ {
			err = wr.WriteMessages(ctx, b.msgs...)
			if err == nil || !errors.Is(err, kafka.UnknownTopicOrPartition) || try == 30 {
				break
			}
			if serr := sleep(ctx, time.Second); serr != nil {
				err = serr
				break
			}
		}
		wr.Close()
		if err != nil {
			return fmt.Errorf("produce %d bootstrap events to %s: %w", len(b.msgs), opts.Topic(b.topic), err)
		}
	}
	return nil
}

// manualTrigger asks the monitor for a manual retrain trigger.
func (c *client) manualTrigger(ctx context.Context, model, note string) (string, error) {
	var resp struct {
		Trigger struct {
			TriggerID string `json:"trigger_id"`
		} `json:"trigger"`
	}
	err := c.do(ctx, http.MethodPost, c.monitor+"/api/v1/models/"+url.PathEscape(model)+"/triggers", monitor.ManualRequest{Note: note}, &resp)
	if err != nil {
		return "", fmt.Errorf("ask the monitor for a manual trigger: %w", err)
	}
	return resp.Trigger.TriggerID, nil
}

// defaultFeatures names the features of the model the demo bootstraps.
func defaultFeatures(n int) []string {
	fs := make([]string, n)
	for i := range fs {
		fs[i] = fmt.Sprintf("f%d", i)
	}
	return fs
}
