package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/retrain"
	"github.com/driftwatch/driftwatch/retrain/model"
)

// Shadow scoring: for a model in ShadowModels, serve also loads the newest
// challenger (the newest built-in version registered after the champion
// with status candidate or rejected: a version the trainer did not
// promote) and, after a request has been answered by the champion, scores
// the same rows with it in a goroutine of its own, logging each as an
// inference event with the challenger's model_version, the champion's
// prediction_id and "shadow": true. The client only ever sees the
// champion's answer; the shadow work goes through a bounded queue
// (shadowQueue requests) that a request never waits on: when it is full
// the rows are dropped and counted, so a slow or failing challenger costs
// a request one non-blocking channel send.

// shadowQueue is the most answered requests waiting for shadow scoring.
const shadowQueue = 1024

// Outcomes of driftwatch_serve_shadow_predictions_total.
const (
	shadowLogged   = "logged"   // scored and accepted into the log buffer
	shadowDropped  = "dropped"  // the shadow queue was full
	shadowInvalid  = "invalid"  // the challenger refused the row (a feature it needs is absent or of another type)
	shadowFailed   = "failed"   // the challenger's scoring panicked or returned a non-finite number
	shadowUnlogged = "unlogged" // scored, but the log buffer was full
)

// shadowJob is one answered request for the challenger to score.
type shadowJob struct {
	champion *served // holds the challenger
	rows     []rowIn
	ids      []string // the champion's prediction ids, by row
	at       time.Time
}

func (s *Settings) shadowed(modelID string) bool { return slices.Contains(s.ShadowModels, modelID) }

// enqueueShadow hands an answered request to the shadow worker without
// waiting.
func (s *Server) enqueueShadow(sv *served, rows []rowIn, out []Prediction, at time.Time) {
	ids := make([]string, len(out))
	for i, p := range out {
		ids[i] = p.PredictionID
	}
	select {
	case s.shadow <- shadowJob{champion: sv, rows: rows, ids: ids, at: at}:
	default:
		s.m.shadow.WithLabelValues(sv.id, shadowDropped).Add(float64(len(rows)))
	}
}

// runShadow scores queued requests with their challenger until ctx ends;
// requests still queued then are not scored.
func (s *Server) runShadow(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.shadow:
			s.scoreShadow(j)
		}
	}
}

func (s *Server) scoreShadow(j shadowJob) {
	ch := j.champion.challenger
	for i, row := range j.rows {
		num, cat, field, msg := ch.parse(row.Features)
		if field != "" {
			s.m.shadow.WithLabelValues(ch.id, shadowInvalid).Inc()
			s.shadowErr(ch, fmt.Errorf("%s: %s", field, msg))
			continue
		}
		t0 := time.Now()
		y, err := s.shadowPredict(ch, num, cat)
		lat := float64(time.Since(t0).Microseconds()) / 1000
		if err != nil {
			s.m.shadow.WithLabelValues(ch.id, shadowFailed).Inc()
			s.shadowErr(ch, err)
			continue
		}
		raw, err := json.Marshal(inferenceEvent{EventID: uuid.NewString(), ModelID: ch.id, ModelVersion: ch.version, PredictionID: j.ids[i],
			Timestamp: j.at.Format(timeFormat), Features: row.Features, Prediction: ch.eventPrediction(y), Segment: row.Segment, LatencyMs: lat, Shadow: true})
		if err != nil {
			panic("BUG: encode shadow inference event: " + err.Error())
		}
		if err := s.events.add(s.opts.Inferences, s.opts.InferencesTopic, kafka.Message{Key: []byte(ch.id), Value: raw, Headers: inferenceHeaders}); err != nil {
			s.m.shadow.WithLabelValues(ch.id, shadowUnlogged).Inc()
			continue
		}
		s.m.shadow.WithLabelValues(ch.id, shadowLogged).Inc()
	}
}

// shadowPredict scores one row with the challenger; a panic or a
// non-finite answer is an error, never a crash of serve.
func (s *Server) shadowPredict(ch *served, num map[string]float64, cat map[string]string) (y float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("challenger %s panicked: %v", ch.version, r)
		}
	}()
	predict := ch.m.PredictRow
	if s.predictHook != nil {
		predict = func(num map[string]float64, cat map[string]string) float64 { return s.predictHook(ch, num, cat) }
	}
	y = predict(num, cat)
	if y != y || y > 1e308 || y < -1e308 {
		return 0, fmt.Errorf("challenger %s answered %g", ch.version, y)
	}
	return y, nil
}

// shadowErr logs a shadow failure at most once a second per server (it is
// on the request path's shadow and may repeat for every row).
func (s *Server) shadowErr(ch *served, err error) {
	now := time.Now()
	if last := s.shadowLogged.Load(); last != 0 && now.UnixNano()-last < int64(time.Second) {
		return
	}
	s.shadowLogged.Store(now.UnixNano())
	s.log.Warn("shadow scoring failed; the champion's answer was not affected", "model", ch.id, "challenger", ch.version, "err", err)
}

// eventPrediction is the wire prediction of y.
func (sv *served) eventPrediction(y float64) eventPrediction {
	if sv.m.Kind == model.KindLogistic {
		label := sv.negative
		if y >= 0.5 {
			label = sv.m.Target.PositiveClass
		}
		return eventPrediction{Score: &y, Label: label}
	}
	return eventPrediction{Value: &y}
}

// isChallenger reports whether v may be shadow-scored: a built-in version
// the trainer registered but did not promote.
func isChallenger(v *retrain.Version) bool {
	return v.Trainer == retrain.TrainerBuiltin && (v.Status == retrain.StatusCandidate || v.Status == retrain.StatusRejected)
}

// loadChallengers sets, in next, the challenger of every shadowed model
// of this registry read (vs, by model and newest first): the newest
// challenger registered after the champion, loaded and checked like a
// champion (and against it). It reports whether next changed.
func (s *Server) loadChallengers(vs []*retrain.Version, cur, next map[string]*served) bool {
	read := map[string]bool{}
	championSeen := map[string]bool{}
	chosen := map[string]*retrain.Version{}
	for _, v := range vs {
		read[v.ModelID] = true
		switch {
		case !s.opts.shadowed(v.ModelID) || v.Trainer != retrain.TrainerBuiltin:
		case v.Status == retrain.StatusChampion:
			championSeen[v.ModelID] = true
		case !championSeen[v.ModelID] && chosen[v.ModelID] == nil && isChallenger(v):
			chosen[v.ModelID] = v
		}
	}
	changed := false
	for id, sv := range next {
		if !read[id] || !s.opts.shadowed(id) {
			continue
		}
		var prev *served
		if c := cur[id]; c != nil {
			prev = c.challenger
		}
		var ch *served
		if v := chosen[id]; v != nil && v.Version != sv.version {
			if prev != nil && prev.version == v.Version && compatible(sv, prev) == nil {
				ch = prev
			} else if loaded, err := s.load(v, sv); err != nil {
				outcome := "failed"
				if errors.Is(err, errRejected) {
					outcome = "rejected"
				}
				s.m.shadowLoads.WithLabelValues(id, outcome).Inc()
				s.log.Error("challenger not loaded; no shadow scoring", "model", id, "version", v.Version, "err", err)
			} else {
				s.m.shadowLoads.WithLabelValues(id, "loaded").Inc()
				s.log.Info("shadow scoring challenger", "model", id, "version", v.Version, "champion", sv.version)
				ch = loaded
			}
		}
		if ch == sv.challenger {
			continue
		}
		if sv.challenger != nil {
			s.m.shadowInfo.DeleteLabelValues(id, sv.challenger.version)
		}
		if ch != nil {
			s.m.shadowInfo.WithLabelValues(id, ch.version).Set(1)
		}
		cp := *sv
		cp.challenger = ch
		next[id] = &cp
		changed = true
	}
	return changed
}

// compatible reports whether ch answers the same task and positive class
// as the champion sv.
func compatible(sv, ch *served) error {
	if sv.m.Target.Task != ch.m.Target.Task || sv.m.Target.PositiveClass != ch.m.Target.PositiveClass {
		return fmt.Errorf("%w: version %s is a %s model (positive class %q), champion %s is a %s one (%q)", errRejected,
			ch.version, ch.m.Target.Task, ch.m.Target.PositiveClass, sv.version, sv.m.Target.Task, sv.m.Target.PositiveClass)
	}
	return nil
}
