package backtest

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteJSON writes rep as indented JSON.
func WriteJSON(w io.Writer, rep Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteTable writes rep for people: what the labels showed, the policies
// side by side, then each policy's alerts.
func WriteTable(w io.Writer, rep Report) error {
	b := &strings.Builder{}
	p := rep.Performance
	fmt.Fprintf(b, "backtest of %s over %s – %s (%.1f days): %d windows of %s every %s\n", rep.Model, rep.From.Format(time.RFC3339), rep.To.Format(time.RFC3339),
		rep.Days, rep.Windows, rep.Window, rep.Step)
	fmt.Fprintf(b, "labels: %s per %s window, reference %s = %.4g; a drop is worse by more than %g on at least %d labels (%d windows judged, %d not)\n",
		p.Metric, p.Window, p.Reference, p.ReferenceValue, p.Drop, p.MinLabelled, p.JudgedWindows, p.UnjudgedWindows)
	if len(rep.Incidents) == 0 && p.JudgedWindows == 0 {
		// Nothing was compared: "no incident" would read as "no drop".
		fmt.Fprintf(b, "incidents: unknown — none of the %d performance windows could be judged (inside the reference %s, or fewer than %d labels): every alert counts as a false alarm; replay a span after the reference\n",
			p.UnjudgedWindows, p.Reference, p.MinLabelled)
	} else if len(rep.Incidents) == 0 {
		fmt.Fprintln(b, "incidents: none (no window dropped: precision is undefined for every alert-free policy, and every alert is a false alarm)")
	} else {
		fmt.Fprintf(b, "incidents (performance drops): %d\n", len(rep.Incidents))
		for _, in := range rep.Incidents {
			fmt.Fprintf(b, "  #%d  %s – %s  %d window(s), worst %s %.4g (%.4g worse)\n", in.ID, in.Start.Format(time.RFC3339), in.End.Format(time.RFC3339),
				in.Windows, p.Metric, in.Worst, in.WorstDrop)
		}
	}
	fmt.Fprintf(b, "an alert is true when an incident overlaps its performance window or the %d after it\n\n", p.Within)

	tw := tabwriter.NewWriter(b, 0, 4, 3, ' ', 0)
	row := func(label string, f func(PolicyReport) string) {
		cells := []string{label}
		for _, pr := range rep.Policies {
			cells = append(cells, f(pr))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	row("policy", func(pr PolicyReport) string { return pr.Name })
	row("alerts (sustained drift)", func(pr PolicyReport) string { return strconv.Itoa(len(pr.Alerts)) })
	row("alerts per day", func(pr PolicyReport) string { return strconv.FormatFloat(pr.AlertsPerDay, 'f', 2, 64) })
	row("triggers published", func(pr PolicyReport) string { return strconv.Itoa(pr.Published) })
	row("triggers held by the gate", func(pr PolicyReport) string { return strconv.Itoa(len(pr.Triggers) - pr.Published) })
	row("true alerts", func(pr PolicyReport) string { return strconv.Itoa(pr.TrueAlerts) })
	row("false alarms", func(pr PolicyReport) string { return strconv.Itoa(len(pr.Alerts) - pr.TrueAlerts) })
	row("incidents detected", func(pr PolicyReport) string {
		return fmt.Sprintf("%d of %d", len(pr.Detections), len(rep.Incidents))
	})
	row("precision", func(pr PolicyReport) string { return ratio(pr.Precision) })
	row("recall", func(pr PolicyReport) string { return ratio(pr.Recall) })
	row("median detection delay", func(pr PolicyReport) string { return delay(pr.MedianDelay) })
	row("max detection delay", func(pr PolicyReport) string { return delay(pr.MaxDelay) })
	row("missed incidents", func(pr PolicyReport) string {
		if len(pr.Missed) == 0 {
			return "-"
		}
		var s []string
		for _, id := range pr.Missed {
			s = append(s, "#"+strconv.Itoa(id))
		}
		return strings.Join(s, " ")
	})
	row("windows evaluated / skipped", func(pr PolicyReport) string { return fmt.Sprintf("%d / %d", pr.Evaluated, pr.Skipped) })
	row("replay", func(pr PolicyReport) string {
		return fmt.Sprintf("%.1f s, %.2f windows/s", pr.Seconds, pr.WindowsPerSecond)
	})
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, pr := range rep.Policies {
		fmt.Fprintf(b, "\nalerts of %s:\n", pr.Name)
		if len(pr.Alerts) == 0 {
			fmt.Fprintln(b, "  none")
		}
		for _, a := range pr.Alerts {
			what := "false alarm"
			if a.Incident != 0 {
				what = fmt.Sprintf("incident #%d", a.Incident)
			}
			fmt.Fprintf(b, "  %s  %d window(s) to %s  %s  on %s\n", a.At.Format(time.RFC3339), a.Windows, a.Until.Format(time.RFC3339), what, strings.Join(a.Features, ", "))
			for _, e := range a.Evidence {
				pv := ""
				if e.PValue != nil {
					pv = fmt.Sprintf(" p=%.3g", *e.PValue)
				}
				fmt.Fprintf(b, "      %s %s = %.4g (threshold %.4g%s, %d rows)\n", e.Feature, e.Method, e.Value, e.Threshold, pv, e.Samples)
			}
		}
		for _, t := range pr.Triggers {
			fmt.Fprintf(b, "  trigger %s  %s  %s  on %s\n", t.At.Format(time.RFC3339), t.Reason, t.Outcome, strings.Join(t.Features, ", "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func ratio(x *float64) string {
	if x == nil {
		return "-"
	}
	return strconv.FormatFloat(*x, 'f', 3, 64)
}

func delay(d *time.Duration) string {
	if d == nil {
		return "-"
	}
	return d.String()
}
