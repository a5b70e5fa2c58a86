package backtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/monitor/policy"
)

// BenchmarkReplayMonth replays a month of one model — 720 hourly windows
// of 500 labelled inferences with 20 numeric and 5 categorical features
// (360,000 rows, written by SQL straight into the real ClickHouse), a
// mean shift of f0 in days 10–12 — with the default policy and hourly
// performance windows, and reports windows/s and the replay's seconds.
//
//	go test ./monitor/backtest/ -run '^$' -bench BenchmarkReplayMonth -benchtime 1x
func BenchmarkReplayMonth(b *testing.B) {
	const days, perHour, numeric, categorical = 30, 500, 20, 5
	conn, _ := testdb.Open(b, "backtest_bench")
	ctx := context.Background()
	end := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	start := end.Add(-days * 24 * time.Hour)
	n := days * 24 * perHour
	var num, cat, z []string
	for i := range numeric {
		shift := ""
		if i == 0 {
			shift = fmt.Sprintf(" + if(number >= %d AND number < %d, 1.5, 0)", 10*24*perHour, 12*24*perHour)
		}
		num = append(num, fmt.Sprintf("'f%d', randNormal(%d, 1)%s", i, i, shift))
		z = append(z, fmt.Sprintf("(features_numeric['f%d'] - %d) * %g", i, i, 0.5/float64(i+1)))
	}
	for j := range categorical {
		cat = append(cat, fmt.Sprintf("'c%d', concat('v', toString(rand(%d) %% %d))", j, j+1, 3+j))
	}
	step := time.Hour / perHour
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, prediction_label, prediction_score, ingested_at)
			SELECT concat('e', toString(number)), 'model-0', 'v1', concat('p', toString(number)), %s + toIntervalMillisecond(number * %d),
			       map(%s), map(%s), '', 0, now64(3) FROM numbers(%d)`, chsql.Time(start), step.Milliseconds(), strings.Join(num, ", "), strings.Join(cat, ", "), n),
		// The score follows the features; the label is drawn from it.
		fmt.Sprintf(`ALTER TABLE inferences UPDATE prediction_score = 1 / (1 + exp(-(%s))) WHERE 1 SETTINGS mutations_sync = 1`, strings.Join(z, " + ")),
		`ALTER TABLE inferences UPDATE prediction_label = if(prediction_score >= 0.5, '1', '0') WHERE 1 SETTINGS mutations_sync = 1`,
		`INSERT INTO outcomes (event_id, model_id, prediction_id, timestamp, actual_label, ingested_at)
			SELECT concat('o', event_id), model_id, prediction_id, timestamp + toIntervalMinute(1), if(randCanonical() < prediction_score, '1', '0'), now64(3) FROM inferences`,
	} {
		if err := conn.Exec(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	s := monitor.DefaultSettings()
	s.Window, s.Step = time.Hour, time.Hour
	b.ResetTimer()
	for range b.N {
		rep, err := Run(ctx, Options{Settings: s, Conn: conn, Model: "model-0", From: start, To: end, Within: 2,
			Policies: []Policy{{Name: "default", Config: policy.Default()}}})
		if err != nil {
			b.Fatal(err)
		}
		pr := rep.Policies[0]
		b.ReportMetric(pr.WindowsPerSecond, "windows/s")
		b.ReportMetric(pr.Seconds, "replay-s")
		b.ReportMetric(float64(rep.Windows), "windows")
		b.ReportMetric(float64(len(pr.Alerts)), "alerts")
	}
}
