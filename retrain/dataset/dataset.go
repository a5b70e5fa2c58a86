// Package dataset builds a model's training dataset from ClickHouse: its
// inferences joined with their outcomes (the inferences_labeled view),
// only rows whose label has matured, streamed in time order as Arrow record
// batches of bounded size and written to Parquet files, one per split:
//
//   - train, validation and test: the training range [From, EvalFrom), split
//     by time order (timestamp, then event_id) at the configured fractions
//     of its row count;
//   - eval: the evaluation window [EvalFrom, To), the most recent matured
//     period, never used for training; champion and challenger are both
//     judged on it.
//
// Memory is bounded by the chunk size: rows are read from one streaming
// query, appended to Arrow builders, and a record is flushed to its split's
// Parquet file every ChunkRows rows. Training then reads the Parquet files
// back one row group at a time (see [Manifest.Batches]), which is what
// lets the solver make several passes without holding the data in memory.
//
// Next to the Parquet files Build writes metadata.json (the [Manifest]:
// schema, row counts, windows, query) and, with JSONL set, one JSON Lines
// file per split for external trainers that have no Parquet reader.
package dataset

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/retrain/model"
)

// The splits, in file order.
const (
	Train      = "train"
	Validation = "validation"
	Test       = "test"
	Eval       = "eval"
)

// Splits lists the split names.
var Splits = []string{Train, Validation, Test, Eval}

// Column names beyond the model package's feature and label columns.
const (
	ColumnEventID         = "event_id"
	ColumnTimestamp       = "timestamp"
	ColumnPredictionScore = "prediction_score"
	ColumnPredictionValue = "prediction_value"
)

// ErrEmpty is returned (wrapped) when a split the run needs has no rows.
var ErrEmpty = errors.New("dataset split is empty")

// Schema is the Arrow schema of every split.
var Schema = arrow.NewSchema([]arrow.Field{
	{Name: ColumnEventID, Type: arrow.BinaryTypes.String},
	{Name: ColumnTimestamp, Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
	{Name: model.ColumnNumeric, Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Float64), Nullable: true},
	{Name: model.ColumnCategorical, Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.BinaryTypes.String), Nullable: true},
	{Name: ColumnPredictionScore, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: ColumnPredictionValue, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: model.ColumnLabel, Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: model.ColumnValue, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
}, nil)

// Spec says which rows to read and how to split them.
type Spec struct {
	ModelID string
	// From is the start of the training range; EvalFrom its end and the
	// start of the evaluation window; To the end of the evaluation window
	// (the maturity horizon: no inference at or after To is read).
	From, EvalFrom, To time.Time
	// TrainFraction and ValidationFraction of the training range's rows (in
	// time order) go to train and validation; the rest to test. Defaults
	// 0.8 and 0.1.
	TrainFraction, ValidationFraction float64
	// ChunkRows is the most rows held in Arrow builders (default 8192).
	ChunkRows int
	// JSONL also writes <split>.jsonl files.
	JSONL bool
}

func (s Spec) withDefaults() Spec {
	if s.TrainFraction == 0 {
		s.TrainFraction = 0.8
	}
	if s.ValidationFraction == 0 {
		s.ValidationFraction = 0.1
	}
	if s.ChunkRows == 0 {
		s.ChunkRows = 8192
	}
	return s
}

// Validate reports every bad field.
func (s Spec) Validate() error {
	s = s.withDefaults()
	var errs []error
	if s.ModelID == "" || strings.ContainsAny(s.ModelID, `'\`) {
		errs = append(errs, fmt.Errorf("model_id: %q is not a model id", s.ModelID))
	}
	if !s.From.Before(s.EvalFrom) || !s.EvalFrom.Before(s.To) {
		errs = append(errs, fmt.Errorf("windows: want from < eval_from < to, got %s, %s, %s", s.From, s.EvalFrom, s.To))
	}
	if s.TrainFraction <= 0 || s.ValidationFraction < 0 || s.TrainFraction+s.ValidationFraction > 1 {
		errs = append(errs, fmt.Errorf("fractions: train %g and validation %g must be positive and sum to at most 1", s.TrainFraction, s.ValidationFraction))
	}
	if s.ChunkRows < 1 {
		errs = append(errs, fmt.Errorf("chunk_rows: must be positive, got %d", s.ChunkRows))
	}
	return errors.Join(errs...)
}

// Window is a half-open time interval.
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// SplitInfo describes one split's files.
type SplitInfo struct {
	Rows    int64  `json:"rows"`
	Parquet string `json:"parquet"`
	JSONL   string `json:"jsonl,omitempty"`
	// Window is the event time of the split's first and last row.
	Window Window `json:"window"`
}

// Manifest is metadata.json: what Build read and wrote.
type Manifest struct {
	ModelID      string               `json:"model_id"`
	Query        string               `json:"query"`
	Training     Window               `json:"training_window"`
	Evaluation   Window               `json:"evaluation_window"`
	Splits       map[string]SplitInfo `json:"splits"`
	Schema       []Field              `json:"schema"`
	RowsRead     int64                `json:"rows_read"`
	BytesWritten int64                `json:"bytes_written"`
	Dir          string               `json:"dir"`
}

// Field is one column of the schema, for metadata.json.
type Field struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Query returns the SQL that reads s's rows in time order.
func (s Spec) Query() string {
	return fmt.Sprintf(`SELECT event_id, timestamp, features_numeric, features_categorical, prediction_score, prediction_value, actual_label, actual_value
FROM inferences_labeled
WHERE model_id = %s AND NOT shadow AND timestamp >= %s AND timestamp < %s
ORDER BY timestamp, event_id`, chsql.String(s.ModelID), chsql.Time(s.From), chsql.Time(s.To))
}

// Build reads s's rows from ClickHouse and writes the splits, metadata.json
// and (with s.JSONL) JSON Lines files into dir, which it creates.
func Build(ctx context.Context, conn driver.Conn, s Spec, dir string) (*Manifest, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("dataset spec: %w", err)
	}
	s = s.withDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create dataset directory: %w", err)
	}
	var nTrain uint64
	countQ := fmt.Sprintf("SELECT count() FROM inferences_labeled WHERE model_id = %s AND NOT shadow AND timestamp >= %s AND timestamp < %s",
		chsql.String(s.ModelID), chsql.Time(s.From), chsql.Time(s.EvalFrom))
	if err := conn.QueryRow(ctx, countQ).Scan(&nTrain); err != nil {
		return nil, fmt.Errorf("count training rows of %s: %w", s.ModelID, err)
	}
	trainEnd := int64(float64(nTrain) * s.TrainFraction)
	valEnd := int64(float64(nTrain) * (s.TrainFraction + s.ValidationFraction))

	m := &Manifest{ModelID: s.ModelID, Query: s.Query(), Training: Window{s.From, s.EvalFrom}, Evaluation: Window{s.EvalFrom, s.To},
		Splits: map[string]SplitInfo{}, Dir: dir}
	for _, f := range Schema.Fields() {
		m.Schema = append(m.Schema, Field{Name: f.Name, Type: f.Type.String()})
	}
	writers := map[string]*splitWriter{}
	defer func() {
		for _, w := range writers {
			w.abort()
		}
	}()
	for _, name := range Splits {
		w, err := newSplitWriter(dir, name, s.JSONL, s.ChunkRows)
		if err != nil {
			return nil, err
		}
		writers[name] = w
	}

	rows, err := conn.Query(ctx, m.Query)
	if err != nil {
		return nil, fmt.Errorf("query dataset of %s: %w", s.ModelID, err)
	}
	defer rows.Close()
	var (
		r  row
		nT int64
	)
	for rows.Next() {
		r = row{}
		if err := rows.Scan(&r.eventID, &r.ts, &r.num, &r.cat, &r.score, &r.value, &r.label, &r.actual); err != nil {
			return nil, fmt.Errorf("scan dataset row: %w", err)
		}
		m.RowsRead++
		name := Eval
		if r.ts.Before(s.EvalFrom) {
			switch {
			case nT < trainEnd:
				name = Train
			case nT < valEnd:
				name = Validation
			default:
				name = Test
			}
			nT++
		}
		if err := writers[name].add(&r); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read dataset of %s: %w", s.ModelID, err)
	}
	for _, name := range Splits {
		w := writers[name]
		info, err := w.close()
		delete(writers, name)
		if err != nil {
			return nil, err
		}
		m.Splits[name] = info
		m.BytesWritten += w.bytes
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode dataset metadata: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "metadata.json"), raw, 0o644); err != nil {
		return nil, fmt.Errorf("write dataset metadata: %w", err)
	}
	m.BytesWritten += int64(len(raw))
	return m, nil
}

// MetadataPath is the manifest file of the dataset in m.Dir.
func (m *Manifest) MetadataPath() string { return filepath.Join(m.Dir, "metadata.json") }

type row struct {
	eventID string
	ts      time.Time
	num     map[string]float64
	cat     map[string]string
	score   *float64
	value   *float64
	label   *string
	actual  *float64
}

// jsonRow is one line of a JSON Lines split.
type jsonRow struct {
	EventID         string            `json:"event_id"`
	Timestamp       time.Time         `json:"timestamp"`
	Numeric         any               `json:"features_numeric"`
	Categorical     map[string]string `json:"features_categorical"`
	PredictionScore *float64          `json:"prediction_score"`
	PredictionValue *float64          `json:"prediction_value"`
	ActualLabel     *string           `json:"actual_label"`
	ActualValue     *float64          `json:"actual_value"`
}

// finite is v, or nil when v is NaN or infinite.
func finite(v *float64) *float64 {
	if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
		return nil
	}
	return v
}

// finiteMap is m with NaN and infinite values as nil.
func finiteMap(m map[string]float64) map[string]*float64 {
	out := make(map[string]*float64, len(m))
	for k, v := range m {
		out[k] = finite(&v)
	}
	return out
}

type splitWriter struct {
	name        string
	pqPath      string
	jsonPath    string
	f           *os.File
	pw          *pqarrow.FileWriter
	jf          *os.File
	jw          *bufio.Writer
	b           *array.RecordBuilder
	chunk       int
	rows        int64
	first, last time.Time
	bytes       int64
}

func newSplitWriter(dir, name string, jsonl bool, chunk int) (*splitWriter, error) {
	w := &splitWriter{name: name, pqPath: filepath.Join(dir, name+".parquet"), chunk: chunk}
	f, err := os.Create(w.pqPath)
	if err != nil {
		return nil, fmt.Errorf("create %s split: %w", name, err)
	}
	w.f = f
	// Data pages v2: arrow/go v15 writes the repetition levels of a v1 page
	// into a buffer it reallocates on every run of levels, which made the
	// map columns quadratic (72 s instead of 10 s for 1M rows of 20
	// features). Dictionaries are off: feature values are mostly distinct
	// floats, and the hash table cost more than Snappy saved.
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithMaxRowGroupLength(int64(chunk)), parquet.WithDataPageVersion(parquet.DataPageV2), parquet.WithDictionaryDefault(false))
	pw, err := pqarrow.NewFileWriter(Schema, f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open Parquet writer for %s split: %w", name, err)
	}
	w.pw = pw
	if jsonl {
		w.jsonPath = filepath.Join(dir, name+".jsonl")
		jf, err := os.Create(w.jsonPath)
		if err != nil {
			pw.Close()
			return nil, fmt.Errorf("create %s JSON Lines: %w", name, err)
		}
		w.jf, w.jw = jf, bufio.NewWriterSize(jf, 1<<16)
	}
	w.b = array.NewRecordBuilder(memory.DefaultAllocator, Schema)
	return w, nil
}

func (w *splitWriter) add(r *row) error {
	if w.rows == 0 {
		w.first = r.ts
	}
	w.last = r.ts
	w.rows++
	b := w.b
	b.Field(0).(*array.StringBuilder).Append(r.eventID)
	b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(r.ts.UnixMilli()))
	nb := b.Field(2).(*array.MapBuilder)
	nb.Append(true)
	nk, nv := nb.KeyBuilder().(*array.StringBuilder), nb.ItemBuilder().(*array.Float64Builder)
	for k, v := range r.num {
		nk.Append(k)
		nv.Append(v)
	}
	cb := b.Field(3).(*array.MapBuilder)
	cb.Append(true)
	ck, cv := cb.KeyBuilder().(*array.StringBuilder), cb.ItemBuilder().(*array.StringBuilder)
	for k, v := range r.cat {
		ck.Append(k)
		cv.Append(v)
	}
	appendF := func(fb *array.Float64Builder, v *float64) {
		if v == nil {
			fb.AppendNull()
		} else {
			fb.Append(*v)
		}
	}
	appendF(b.Field(4).(*array.Float64Builder), r.score)
	appendF(b.Field(5).(*array.Float64Builder), r.value)
	if lb := b.Field(6).(*array.StringBuilder); r.label == nil {
		lb.AppendNull()
	} else {
		lb.Append(*r.label)
	}
	appendF(b.Field(7).(*array.Float64Builder), r.actual)
	if w.jw != nil {
		// JSON has no NaN or infinity: such values are written as null.
		var num any = r.num
		for _, v := range r.num {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				num = finiteMap(r.num)
				break
			}
		}
		raw, err := json.Marshal(jsonRow{r.eventID, r.ts.UTC(), num, r.cat, finite(r.score), finite(r.value), r.label, finite(r.actual)})
		if err != nil {
			return fmt.Errorf("encode %s row: %w", w.name, err)
		}
		w.jw.Write(raw)
		if err := w.jw.WriteByte('\n'); err != nil {
			return fmt.Errorf("write %s JSON Lines: %w", w.name, err)
		}
	}
	if b.Field(0).Len() >= w.chunk {
		return w.flush()
	}
	return nil
}

func (w *splitWriter) flush() error {
	rec := w.b.NewRecord()
	defer rec.Release()
	if rec.NumRows() == 0 {
		return nil
	}
	if err := w.pw.Write(rec); err != nil {
		return fmt.Errorf("write %s split: %w", w.name, err)
	}
	return nil
}

func (w *splitWriter) close() (SplitInfo, error) {
	info := SplitInfo{Rows: w.rows, Parquet: w.pqPath, JSONL: w.jsonPath, Window: Window{w.first, w.last}}
	err := w.flush()
	w.b.Release()
	if cerr := w.pw.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s split: %w", w.name, cerr)
	}
	if st, serr := os.Stat(w.pqPath); serr == nil {
		w.bytes += st.Size()
	}
	if w.jw != nil {
		if ferr := w.jw.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("flush %s JSON Lines: %w", w.name, ferr)
		}
		if cerr := w.jf.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if st, serr := os.Stat(w.jsonPath); serr == nil {
			w.bytes += st.Size()
		}
	}
	return info, err
}

func (w *splitWriter) abort() {
	w.b.Release()
	w.pw.Close()
	if w.jf != nil {
		w.jf.Close()
	}
}

// ReadParquet streams the records of one Parquet split, batchRows rows at
// a time (0 → 8192). Each call starts again at the first row, as
// model.Batches requires.
func ReadParquet(path string, batchRows int) model.Batches {
	if batchRows <= 0 {
		batchRows = 8192
	}
	return func(ctx context.Context) iter.Seq2[arrow.Record, error] {
		return func(yield func(arrow.Record, error) bool) {
			pf, err := file.OpenParquetFile(path, false)
			if err != nil {
				yield(nil, fmt.Errorf("open %s: %w", path, err))
				return
			}
			defer pf.Close()
			fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(batchRows)}, memory.DefaultAllocator)
			if err != nil {
				yield(nil, fmt.Errorf("read %s: %w", path, err))
				return
			}
			rr, err := fr.GetRecordReader(ctx, nil, nil)
			if err != nil {
				yield(nil, fmt.Errorf("read %s: %w", path, err))
				return
			}
			defer rr.Release()
			for rr.Next() {
				if !yield(rr.Record(), nil) {
					return
				}
			}
			if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
				yield(nil, fmt.Errorf("read %s: %w", path, err))
			}
		}
	}
}

// Batches streams one split of the dataset.
func (m *Manifest) Batches(split string) model.Batches {
	return ReadParquet(m.Splits[split].Parquet, 0)
}

// LoadManifest reads a dataset's metadata.json.
func LoadManifest(path string) (*Manifest, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read dataset metadata: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decode dataset metadata %s: %w", path, err)
	}
	return &m, nil
}
