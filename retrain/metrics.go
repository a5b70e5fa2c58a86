package retrain

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	received, deadLettered *prometheus.CounterVec
	skipped, runs, events  *prometheus.CounterVec
	cpu, rowsRead          *prometheus.CounterVec
	bytesWritten           *prometheus.CounterVec
	queued, running        prometheus.Gauge
	budgetSkipped          *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_trainer_triggers_received_total", Help: "Valid retrain triggers received, by model."}, []string{"model"}),
		deadLettered:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_trainer_triggers_dead_lettered_total", Help: "Malformed retrain triggers sent to the dead-letter topic, by reason."}, []string{"reason"}),
		skipped:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_trainer_triggers_skipped_total", Help: "Triggers not run because the same trigger was queued, running or already ran, by model and cause (queued, duplicate)."}, []string{"model", "cause"}),
		runs:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_trainer_runs_total", Help: "Finished training runs by model and status (succeeded, rejected, failed)."}, []string{"model", "status"}),
		events:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_trainer_model_events_total", Help: "Model events published, by kind."}, []string{"kind"}),
		cpu:           prometheus.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_trainer_cpu_seconds_total", Help: "CPU seconds spent in training runs, by model."}, []string{"model"}),
		rowsRead:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_trainer_rows_read_total", Help: "Dataset rows read from ClickHouse, by model."}, []string{"model"}),
		bytesWritten:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_trainer_bytes_written_total", Help: "Bytes of datasets and artifacts written, by model."}, []string{"model"}),
		budgetSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_trainer_budget_skipped_total", Help: "Triggers recorded as skipped because the model was over its retrain budget, by reason (max_runs_per_day, min_interval)."}, []string{"reason"}),
		queued:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "driftwatch_trainer_queue_length", Help: "Triggers waiting to run."}),
		running:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "driftwatch_trainer_runs_in_progress", Help: "Training runs in progress."}),
	}
	for _, c := range []prometheus.Collector{m.received, m.deadLettered, m.skipped, m.runs, m.events, m.cpu, m.rowsRead, m.bytesWritten, m.queued, m.running, m.budgetSkipped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
