package admin

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/retrain"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

func TestManualTrigger(t *testing.T) {
	a := schemas.NewManualTrigger("model-1", "", time.Now())
	b := schemas.NewManualTrigger("model-1", "", time.Now())
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if a.Reason != "manual" || a.DedupKey == b.DedupKey || a.TriggerID == b.TriggerID {
		t.Errorf("manual triggers %+v %+v: want reason manual and unique ids", a, b)
	}
}

func TestRetrainNeedsModel(t *testing.T) {
	var out, errb bytes.Buffer
	code := command.Main([]string{"retrain", "-check-config"}, command.Env{Stdout: &out, Stderr: &errb, LookupEnv: func(string) (string, bool) { return "", false }}, Commands())
	if code == 0 || !strings.Contains(errb.String(), "model: required") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

func TestPrintVersions(t *testing.T) {
	var out bytes.Buffer
	printVersions(command.Env{Stdout: &out}, []*retrain.Version{{ModelID: "m", Version: "r1", Status: "champion", Metrics: map[string]float64{"roc_auc": 0.9},
		ChampionMetrics: map[string]float64{"roc_auc": 0.5}, Trainer: "builtin", TriggerID: "t1"}})
	if !strings.Contains(out.String(), "roc_auc=0.9000/0.5000") || !strings.Contains(out.String(), "champion") {
		t.Errorf("got %q", out.String())
	}
}
