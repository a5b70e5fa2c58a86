package analyst

import (
	"context"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/testdb"
)

// readmeQueries returns the numbered ```sql blocks of docs/tables.md.
func readmeQueries(t *testing.T) []string {
	raw, err := os.ReadFile("../../docs/tables.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)```sql\n(-- \\d+\\..*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(raw), -1) {
		out = append(out, strings.TrimSuffix(strings.TrimSpace(m[1]), ";"))
	}
	return out
}

func exec(t *testing.T, conn driver.Conn, q string) {
	t.Helper()
	if err := conn.Exec(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// rows runs q and returns every row formatted with %v, columns joined by " | ".
func rows(t *testing.T, conn driver.Conn, q string) []string {
	t.Helper()
	r, err := conn.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("query failed: %v\n%s", err, q)
	}
	defer r.Close()
	var out []string
	types := r.ColumnTypes()
	for r.Next() {
		vals := make([]any, len(types))
		for i, ct := range types {
			vals[i] = newOf(ct.ScanType())
		}
		if err := r.Scan(vals...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = deref(v)
		}
		out = append(out, strings.Join(parts, " | "))
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestREADMEQueries(t *testing.T) {
	conn, _ := testdb.Open(t, "analyst_test")

	// Ten churn predictions a second apart, ending a minute ago: labels
	// alternate yes/no, score i/10, age 20+i (null for the last). Six get
	// the label "yes" a minute later (accuracy 3/6). e0 arrives twice.
	// Two fraud predictions without labels. Revenue 10+20+30.
	t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Second).Add(-10 * time.Second)
	ts := func(d time.Duration) string { return fmt.Sprintf("'%s'", t0.Add(d).Format("2006-01-02 15:04:05.000")) }
	var vals []string
	for i := 0; i < 10; i++ {
		label := map[bool]string{true: "yes", false: "no"}[i%2 == 0]
		num, missing := fmt.Sprintf("{'age':%d,'income':%d}", 20+i, 1000*i), "[]"
		if i == 9 {
			num, missing = "{'income':9000}", "['age']"
		}
		vals = append(vals, fmt.Sprintf("('e%d','churn','v1','p%d',%s,%s,{'plan':'pro'},%s,'%s',%g,NULL,{},{},%g,'t',0,%d,now64(3))",
			i, i, ts(time.Duration(i)*time.Second), num, missing, label, float64(i)/10, 2.0+float64(i), i))
	}
	cols := "(event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, missing_features, prediction_label, prediction_score, prediction_value, prediction_probabilities, segment, latency_ms, kafka_topic, kafka_partition, kafka_offset, ingested_at)"
	exec(t, conn, "INSERT INTO inferences "+cols+" VALUES "+strings.Join(vals, ","))
	exec(t, conn, "INSERT INTO inferences "+cols+" VALUES "+vals[0]) // a producer duplicate, in another batch
	exec(t, conn, "INSERT INTO inferences "+cols+" VALUES "+
		fmt.Sprintf("('f0','fraud','v3','q0',%s,{'amount':5},{},[],'ok',0.2,NULL,{},{},NULL,'t',0,20,now64(3)),", ts(0))+
		fmt.Sprintf("('f1','fraud','v3','q1',%s,{'amount':7},{},[],'ok',0.4,NULL,{},{},NULL,'t',0,21,now64(3))", ts(time.Second)))
	var outs []string
	for i := 0; i < 6; i++ {
		outs = append(outs, fmt.Sprintf("('o%d','churn','p%d',%s,'yes',NULL,'t',0,%d,now64(3))", i, i, ts(time.Duration(i)*time.Second+time.Minute), i))
	}
	exec(t, conn, "INSERT INTO outcomes (event_id, model_id, prediction_id, timestamp, actual_label, actual_value, kafka_topic, kafka_partition, kafka_offset, ingested_at) VALUES "+strings.Join(outs, ","))
	exec(t, conn, "INSERT INTO business_metrics (event_id, metric, value, timestamp, model_id, segment, kafka_topic, kafka_partition, kafka_offset, ingested_at) VALUES "+
		fmt.Sprintf("('b0','revenue',10,%s,'churn',{},'t',0,0,now64(3)),('b1','revenue',20,%s,'churn',{},'t',0,1,now64(3)),('b2','revenue',30,%s,'churn',{},'t',0,2,now64(3))", ts(0), ts(time.Second), ts(2*time.Second)))

	// Three dead letters of churn (one offset delivered twice, in two
	// batches) and one of fraud.
	dl := func(offset int, model, reason, errText string) string {
		return fmt.Sprintf("(%s,now64(3),'%s','inferences','%s','%s','{}',2,'t',0,%d)", ts(0), model, reason, errText, offset)
	}
	dlCols := "(timestamp, received_at, model_id, kind, reason, error, payload, payload_bytes, kafka_topic, kafka_partition, kafka_offset)"
	exec(t, conn, "INSERT INTO dead_letters "+dlCols+" VALUES "+strings.Join([]string{
		dl(100, "churn", "missing_field", "event_id: required field is missing"),
		dl(101, "churn", "missing_field", "event_id: required field is missing"),
		dl(102, "churn", "invalid_json", "unexpected end of JSON input"),
		dl(103, "fraud", "invalid_json", "unexpected end of JSON input")}, ","))
	exec(t, conn, "INSERT INTO dead_letters "+dlCols+" VALUES "+dl(101, "churn", "missing_field", "event_id: required field is missing"))

	qs := readmeQueries(t)
	if len(qs) != 6 {
		t.Fatalf("docs/tables.md has %d numbered SQL examples, want 6", len(qs))
	}
	day := t0.Format("2006-01-02")
	sameHour := t0.Truncate(time.Hour).Equal(t0.Add(9 * time.Second).Truncate(time.Hour))
	sameDay := t0.Format("2006-01-02") == t0.Add(70*time.Second).Format("2006-01-02")

	t.Run("1 volume per hour", func(t *testing.T) {
		got := rows(t, conn, qs[0])
		total := map[string]int{}
		for _, r := range got {
			f := strings.Split(r, " | ")
			var n int
			fmt.Sscan(f[2], &n)
			total[f[0]] += n
		}
		// The rollup counts rows as written, so the duplicate counts.
		if total["churn"] != 11 || total["fraud"] != 2 {
			t.Errorf("totals %v from %q", total, got)
		}
		if sameHour && len(got) != 2 {
			t.Errorf("want one hour per model, got %q", got)
		}
	})
	t.Run("2 label coverage", func(t *testing.T) {
		got := rows(t, conn, qs[1])
		if len(got) != 2 || got[0] != "churn | 10 | 6 | 0.6 | 60" || !strings.HasPrefix(got[1], "fraud | 2 | 0 | 0 | ") {
			t.Errorf("got %q", got)
		}
	})
	t.Run("3 accuracy", func(t *testing.T) {
		got := rows(t, conn, qs[2])
		if sameDay && (len(got) != 1 || got[0] != "churn | v1 | "+day+" | 0.5 | 6") {
			t.Errorf("got %q", got)
		}
	})
	t.Run("4 feature distribution", func(t *testing.T) {
		got := rows(t, conn, qs[3])
		// ages 20..28 present, one of ten missing; quantile() interpolates.
		if sameDay && (len(got) != 1 || !strings.HasPrefix(got[0], day+" | [20.8 24 27.2] | 0.1")) {
			t.Errorf("got %q", got)
		}
	})
	t.Run("6 dead letters per reason", func(t *testing.T) {
		got := rows(t, conn, qs[5])
		want := []string{"missing_field | 2 | event_id: required field is missing", "invalid_json | 1 | unexpected end of JSON input"}
		if t0.Format("2006-01-02") == time.Now().UTC().Format("2006-01-02") && !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("5 KPI and mean score", func(t *testing.T) {
		got := rows(t, conn, qs[4])
		// (0+0.1+…+0.9 + 0 for the duplicate of e0) / 11
		want := fmt.Sprintf("%s | 60 | %g", day, math.Round(4.5/11*1e4)/1e4)
		if sameDay && (len(got) != 1 || got[0] != want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}
