package retrain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/retrain/dataset"
	"github.com/driftwatch/driftwatch/retrain/model"
	"github.com/driftwatch/driftwatch/schemas"
)

// ModelSchemaHeader is the schema header of model events.
const ModelSchemaHeader = "driftwatch.model-event.v1"

// Runs lists a model's training runs, oldest first.
func (t *Trainer) Runs(ctx context.Context, modelID string) ([]*Run, error) {
	return t.store().modelRuns(ctx, modelID)
}

func (t *Trainer) findRun(ctx context.Context, trig schemas.RetrainTrigger, runID string) (*Run, error) {
	runs, err := t.store().triggerRuns(ctx, trig, runID)
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	for _, r := range runs {
		if r.RunID == runID {
			return r, nil
		}
	}
	return runs[0], nil
}

// Version is one row of models.
type Version struct {
	ModelID         string             `json:"model_id"`
	Version         string             `json:"version"`
	Status          string             `json:"status"`
	Metrics         map[string]float64 `json:"metrics"`
	ChampionMetrics map[string]float64 `json:"champion_metrics"`
	// FeatureImportance and CoefficientImportance are the version's
	// normalised feature importance (docs/monitor.md, "Importance-weighted
	// drift"); empty when unknown.
	FeatureImportance     map[string]float64 `json:"feature_importance,omitempty"`
	CoefficientImportance map[string]float64 `json:"coefficient_importance,omitempty"`
	Trainer               string             `json:"trainer"`
	ArtifactURI           string             `json:"artifact_uri"`
	TriggerID             string             `json:"trigger_id"`
	RunID                 string             `json:"run_id"`
	ParentVersion         string             `json:"parent_version"`
	Reason                string             `json:"reason"`
	CreatedAt             time.Time          `json:"created_at"`
	UpdatedAt             time.Time          `json:"updated_at"`
}

// ListVersions lists the registry like the package function.
func (t *Trainer) ListVersions(ctx context.Context, modelID string) ([]*Version, error) {
	return t.store().versions(ctx, modelID)
}

func (t *Trainer) champion(ctx context.Context, modelID string) (string, error) {
	vs, err := t.ListVersions(ctx, modelID)
	if err != nil {
		return "", err
	}
	for _, v := range vs {
		if v.Status == StatusChampion {
			return v.Version, nil
		}
	}
	return "", nil
}

// register records a finished run: run row, then model row (and the old
// champion retired), then the events, then the run row again with the
// publish step (events published). Each write is idempotent (same keys,
// newer updated_at), and Recover (or the trigger's redelivery) completes a
// registration a crash cut short, so a version is never half-registered
// or promoted twice and its events are published at least once.
func (t *Trainer) register(ctx context.Context, r *Run, ev *evaluation) error {
	start := time.Now()
	r.Decision, r.DecisionReason = ev.decision, ev.reason
	r.Status = RunRejected
	if ev.decision == DecisionPromote {
		r.Status = RunSucceeded
	}
	if err := t.store().writeRun(ctx, r); err != nil {
		return err
	}
	t.m.runs.WithLabelValues(r.ModelID, r.Status).Inc()
	return t.completeRegistration(ctx, r, true, start)
}

// stepPublish is the step_seconds key of the model events' publication.
const stepPublish = "publish"

// eventsPublished reports whether r's model events were published: its
// events_published column, or, for a row written before that column
// existed, the publish step in step_seconds.
func eventsPublished(r *Run) bool {
	if r.EventsPublished {
		return true
	}
	_, ok := r.StepSeconds[stepPublish]
	return ok
}

// completeRegistration writes the models row (when writeModel; it is
// false when the row is already there, which may have been retired since)
// and retires the previous champion, publishes the events, and rewrites
// the run row with the publish step, marking the events published.
func (t *Trainer) completeRegistration(ctx context.Context, r *Run, writeModel bool, start time.Time) error {
	if r.StepSeconds == nil {
		r.StepSeconds = map[string]float64{}
	}
	if writeModel {
		if err := t.writeRunVersion(ctx, r); err != nil {
			return err
		}
	}
	r.StepSeconds["register"] = time.Since(start).Seconds()
	pub := time.Now()
	if err := t.publish(ctx, r, schemas.ModelRegistered); err != nil {
		return err
	}
	kind := schemas.ModelRejected
	if r.Status == RunSucceeded {
		kind = schemas.ModelPromoted
	}
	if err := t.publish(ctx, r, kind); err != nil {
		return err
	}
	r.StepSeconds[stepPublish] = time.Since(pub).Seconds()
	r.EventsPublished = true
	return t.store().writeRun(ctx, r)
}

// republish completes the registration of a finished run whose events
// were not published (the models row is written first when missing).
func (t *Trainer) republish(ctx context.Context, r *Run) error {
	vs, err := t.ListVersions(ctx, r.ModelID)
	if err != nil {
		return err
	}
	have := false
	for _, v := range vs {
		have = have || v.Version == r.Version
	}
	t.log.Warn("publishing the model events of a registration cut short", "model", r.ModelID, "run_id", r.RunID, "version", r.Version, "models_row", have)
	return t.completeRegistration(ctx, r, !have, time.Now())
}

func (t *Trainer) writeRunVersion(ctx context.Context, r *Run) error {
	v := &Version{ModelID: r.ModelID, Version: r.Version, Status: StatusRejected, Metrics: r.Metrics, ChampionMetrics: r.ChampionMetrics,
		Trainer: r.Trainer, ArtifactURI: r.ArtifactURI, TriggerID: r.TriggerID, RunID: r.RunID, ParentVersion: r.ParentVersion,
		Reason: r.DecisionReason, CreatedAt: r.StartedAt, FeatureImportance: r.FeatureImportance}
	if r.FinishedAt != nil {
		v.CreatedAt = *r.FinishedAt
	}
	if r.Status == RunSucceeded {
		v.Status = StatusChampion
	}
	if r.Trainer == TrainerBuiltin && r.ArtifactURI != "" {
		// The built-in models' standardised coefficients, from the artifact
		// (so a registration completed by Recover has them too).
		if m, _, err := ReadArtifact(r.ArtifactURI); err == nil {
			v.CoefficientImportance = m.CoefficientImportance()
		} else {
			t.log.Warn("no coefficient importance: artifact unreadable", "model", r.ModelID, "version", r.Version, "err", err)
		}
	}
	if err := t.store().writeVersion(ctx, v); err != nil {
		return err
	}
	if v.Status == StatusChampion {
		return t.retireOthers(ctx, r.ModelID, r.Version)
	}
	return nil
}

// retireOthers marks every champion of modelID other than keep retired.
func (t *Trainer) retireOthers(ctx context.Context, modelID, keep string) error {
	vs, err := t.ListVersions(ctx, modelID)
	if err != nil {
		return err
	}
	for _, v := range vs {
		if v.Status == StatusChampion && v.Version != keep {
			v.Status = StatusRetired
			v.Reason = "superseded by " + keep
			if err := t.store().writeVersion(ctx, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// publish writes a model event. Its event_id is run_id:kind, so a
// republished event (after a crash) is recognisable as the same one.
func (t *Trainer) publish(ctx context.Context, r *Run, kind schemas.ModelEventKind) error {
	e := schemas.ModelEvent{EventID: r.RunID + ":" + string(kind), ModelID: r.ModelID, Version: r.Version, Kind: kind, TriggerID: r.TriggerID,
		ChampionMetrics: r.ChampionMetrics, ChallengerMetrics: r.Metrics, ArtifactURI: r.ArtifactURI, Timestamp: t.opts.Now().UTC()}
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode model event: %w", err)
	}
	if err := t.opts.Events.WriteMessages(ctx, kafka.Message{Key: []byte(r.ModelID), Value: raw,
		Headers: []kafka.Header{{Key: schemas.SchemaHeader, Value: []byte(ModelSchemaHeader)}}}); err != nil {
		return fmt.Errorf("publish %s event of %s %s: %w", kind, r.ModelID, r.Version, err)
	}
	t.m.events.WithLabelValues(string(kind)).Inc()
	return nil
}

// Recover repairs what a crashed trainer left: runs still running whose
// owner is gone (its lease lapsed, or a process of this host that no
// longer exists) are marked failed (interrupted; their trigger,
// redelivered because its offset was not committed, retries them), while
// runs another live trainer holds are left to it; finished runs whose version is
// not in models are registered, finished runs whose events were not
// published (no publish step) have them published, and a model with more
// than one champion keeps only the newest.
//
// A run ClickHouse refuses to finish for good (chclient.Permanent) is
// logged and left as it is, so that one run cannot keep the trainer from
// starting.
func (t *Trainer) Recover(ctx context.Context) error {
	runs, err := t.store().unsettledRuns(ctx)
	if err != nil {
		return err
	}
	vs, err := t.ListVersions(ctx, "")
	if err != nil {
		return err
	}
	have := map[string]bool{}
	champs := map[string]string{}
	for _, v := range vs {
		have[v.ModelID+"\x00"+v.Version] = true
		if v.Status == StatusChampion && champs[v.ModelID] == "" {
			champs[v.ModelID] = v.Version // newest first
		}
	}
	for _, r := range runs {
		switch {
		case r.Status == RunRunning:
			state, why, err := t.leaseOf(ctx, r)
			if err != nil {
				return err
			}
			if state != leaseAbandoned {
				t.log.Info("training run left to its trainer", "model", r.ModelID, "run_id", r.RunID, "why", why)
				continue
			}
			now := t.opts.Now().UTC()
			r.Status, r.FinishedAt = RunFailed, &now
			r.DecisionReason = interruptedReason + ": the trainer stopped mid-run (crash or kill): " + why
			r.Interrupted = true
			if err := t.store().writeRun(ctx, r); err != nil {
				if t.refused(r, err) {
					continue
				}
				return err
			}
			t.log.Warn("marked an interrupted training run failed", "model", r.ModelID, "run_id", r.RunID, "why", why)
		case !have[r.ModelID+"\x00"+r.Version]:
			t.log.Warn("completing a registration cut short", "model", r.ModelID, "run_id", r.RunID, "version", r.Version)
			if err := t.completeRegistration(ctx, r, true, time.Now()); err != nil {
				if t.refused(r, err) {
					continue
				}
				return err
			}
			if r.Status == RunSucceeded {
				champs[r.ModelID] = r.Version
			}
		case !eventsPublished(r):
			// The models row is there (and may have been retired since):
			// only the events are missing.
			t.log.Warn("publishing the model events of a registration cut short", "model", r.ModelID, "run_id", r.RunID, "version", r.Version)
			if err := t.completeRegistration(ctx, r, false, time.Now()); err != nil {
				if t.refused(r, err) {
					continue
				}
				return err
			}
		}
	}
	for id, keep := range champs {
		if err := t.retireOthers(ctx, id, keep); err != nil {
			return err
		}
	}
	return nil
}

// ListVersions lists the registry (one model, or every model when modelID
// is empty), by model and newest first.
func ListVersions(ctx context.Context, conn driver.Conn, modelID string) ([]*Version, error) {
	return store{conn: conn}.versions(ctx, modelID)
}

// ArtifactFile and ChecksumFile are the names of a built-in model's
// artifact and of its SHA-256 checksum (sha256sum's format: the hex digest,
// two spaces, the file name) in the version's artifact directory.
const (
	ArtifactFile = "model.json"
	ChecksumFile = "model.json.sha256"
)

// WriteArtifact writes m to dir/model.json and its checksum to
// dir/model.json.sha256, each atomically (a temporary file renamed), the
// artifact first, so a reader that finds the checksum finds its artifact.
func WriteArtifact(dir string, m *model.Model) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create artifact directory: %w", err)
	}
	var buf bytes.Buffer
	if err := m.Save(&buf); err != nil {
		return err
	}
	if err := writeFileAtomic(dir, ArtifactFile, buf.Bytes()); err != nil {
		return fmt.Errorf("write model artifact: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	if err := writeFileAtomic(dir, ChecksumFile, []byte(hex.EncodeToString(sum[:])+"  "+ArtifactFile+"\n")); err != nil {
		return fmt.Errorf("write model artifact checksum: %w", err)
	}
	return nil
}

func writeFileAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// ErrArtifact is wrapped by ReadArtifact's errors about the artifact
// itself (not a file://, missing, checksum mismatch, undecodable), as
// opposed to the registry's.
var ErrArtifact = errors.New("model artifact")

// ErrChecksum is wrapped (with ErrArtifact) when model.json does not match
// model.json.sha256: the artifact was changed or cut short after training.
var ErrChecksum = errors.New("checksum mismatch")

// ReadArtifact reads the built-in model of artifactURI (file://<dir>, as
// the registry records it; a relative dir is from the working directory) and checks it against its checksum file. It
// returns the model and the artifact's bytes as stored.
func ReadArtifact(artifactURI string) (*model.Model, []byte, error) {
	dir, ok := strings.CutPrefix(artifactURI, "file://")
	if !ok || dir == "" {
		// A relative path (a trainer with a relative data_dir before
		// they were made absolute) is taken from the working directory.
		return nil, nil, fmt.Errorf("%w: %q is not a file:// URI", ErrArtifact, artifactURI)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ArtifactFile))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	sumLine, err := os.ReadFile(filepath.Join(dir, ChecksumFile))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: checksum: %w", ErrArtifact, err)
	}
	want, _, _ := strings.Cut(strings.TrimSpace(string(sumLine)), " ")
	got := sha256.Sum256(raw)
	if hex.EncodeToString(got[:]) != strings.ToLower(want) {
		return nil, nil, fmt.Errorf("%w: %s: %w: sha256 %x, %s says %s", ErrArtifact, filepath.Join(dir, ArtifactFile), ErrChecksum, got, ChecksumFile, want)
	}
	m, err := model.Load(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrArtifact, filepath.Join(dir, ArtifactFile), err)
	}
	return m, raw, nil
}

// WriteVersion inserts v into the registry (models) as the newest row of
// its version.
func WriteVersion(ctx context.Context, conn driver.Conn, v *Version) error {
	return store{conn: conn}.writeVersion(ctx, v)
}

// ErrNoPrevious is returned by Rollback when a model has no earlier
// version to go back to.
var ErrNoPrevious = errors.New("no previous champion")

// Rollback re-promotes the champion before the current one of modelID:
// the current champion's parent_version when it is in the registry, else
// the newest retired version. It marks that version champion and the
// current one retired (reason "rolled back to …"), then publishes a
// promoted model event for it, so servers follow. It returns both
// versions.
func Rollback(ctx context.Context, conn driver.Conn, events *kafka.Writer, modelID string, now time.Time) (from, to string, err error) {
	s := store{conn: conn}
	vs, err := s.versions(ctx, modelID)
	if err != nil {
		return "", "", err
	}
	var cur, prev *Version
	for _, v := range vs {
		if v.Status == StatusChampion && cur == nil {
			cur = v
		}
	}
	if cur == nil {
		return "", "", fmt.Errorf("rollback %s: %w: the model has no champion", modelID, ErrNoPrevious)
	}
	for _, v := range vs {
		if v.Version == cur.ParentVersion && v.Version != cur.Version {
			prev = v
		}
	}
	if prev == nil {
		for _, v := range vs { // newest first
			if v.Status == StatusRetired && v.CreatedAt.Before(cur.CreatedAt) {
				prev = v
				break
			}
		}
	}
	if prev == nil {
		return cur.Version, "", fmt.Errorf("rollback %s: %w before %s", modelID, ErrNoPrevious, cur.Version)
	}
	prev.Status, prev.Reason = StatusChampion, "rollback from "+cur.Version
	if err := s.writeVersion(ctx, prev); err != nil {
		return "", "", err
	}
	cur.Status, cur.Reason = StatusRetired, "rolled back to "+prev.Version
	if err := s.writeVersion(ctx, cur); err != nil {
		return "", "", err
	}
	if err := PublishPromoted(ctx, events, prev, now); err != nil {
		return "", "", err
	}
	return cur.Version, prev.Version, nil
}

// PublishPromoted publishes a promoted model event for v (its event_id is
// promoted:<model>:<version>:<time>, one per promotion).
func PublishPromoted(ctx context.Context, events *kafka.Writer, v *Version, now time.Time) error {
	e := schemas.ModelEvent{EventID: fmt.Sprintf("promoted:%s:%s:%d", v.ModelID, v.Version, now.UnixMilli()), ModelID: v.ModelID, Version: v.Version,
		Kind: schemas.ModelPromoted, TriggerID: v.TriggerID, ChallengerMetrics: v.Metrics, ArtifactURI: v.ArtifactURI, Timestamp: now.UTC()}
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode model event: %w", err)
	}
	if err := events.WriteMessages(ctx, kafka.Message{Key: []byte(v.ModelID), Value: raw,
		Headers: []kafka.Header{{Key: schemas.SchemaHeader, Value: []byte(ModelSchemaHeader)}}}); err != nil {
		return fmt.Errorf("publish promoted event of %s %s: %w", v.ModelID, v.Version, err)
	}
	return nil
}

// artifactMetadata is metadata.json next to a model artifact.
type artifactMetadata struct {
	ModelID         string             `json:"model_id"`
	Version         string             `json:"version"`
	RunID           string             `json:"run_id"`
	TriggerID       string             `json:"trigger_id"`
	ParentVersion   string             `json:"parent_version"`
	Trainer         string             `json:"trainer"`
	Dataset         *dataset.Manifest  `json:"dataset"`
	EvaluationRows  int                `json:"evaluation_rows"`
	Metrics         map[string]float64 `json:"metrics"`
	ChampionMetrics map[string]float64 `json:"champion_metrics"`
	Comparison      model.DiffCI       `json:"comparison"`
	Decision        string             `json:"decision"`
	Reason          string             `json:"reason"`
}

func writeMetadata(dir string, r *Run, ds *dataset.Manifest, ev *evaluation) error {
	raw, err := json.MarshalIndent(artifactMetadata{ModelID: r.ModelID, Version: r.Version, RunID: r.RunID, TriggerID: r.TriggerID, ParentVersion: r.ParentVersion,
		Trainer: r.Trainer, Dataset: ds, EvaluationRows: ev.rows, Metrics: ev.challenger, ChampionMetrics: ev.champion, Comparison: ev.ci,
		Decision: ev.decision, Reason: ev.reason}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode artifact metadata: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "metadata.json"), raw, 0o644); err != nil {
		return fmt.Errorf("write artifact metadata: %w", err)
	}
	return nil
}

// refused reports whether err, from finishing run r, is ClickHouse
// refusing the request for good, and logs it if so.
func (t *Trainer) refused(r *Run, err error) bool {
	if class, _ := chclient.Classify(err); class != chclient.Permanent {
		return false
	}
	t.log.Error("cannot finish a training run: ClickHouse refuses it; left as it is", "model", r.ModelID, "run_id", r.RunID, "status", r.Status, "err", err)
	return true
}
