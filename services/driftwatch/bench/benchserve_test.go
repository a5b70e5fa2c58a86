package bench

import (
	"testing"

	"github.com/driftwatch/driftwatch/services/driftwatch/command/commandtest"
)

func TestBenchServeConfig(t *testing.T) {
	commandtest.RunCases(t, []string{"bench", "serve"}, Commands(), []commandtest.Case{
		{Name: "defaults are valid", Args: []string{"-check-config"}, WantOut: "features: 20"},
		{Name: "help explains the phases and targets", Args: []string{"-help"},
			WantErr: []string{"saturation", "p99", "logging overhead", "Python", "-rate", "-concurrency", "-python"}},
		{Name: "every problem at once", Args: []string{"-features", "0", "-rate", "0", "-duration", "10ms", "-concurrency", "0"},
			WantCode: 2, WantErr: []string{"features:", "rate:", "duration:", "concurrency:"}},
	})
}
