package retrain

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func testutilCount(c *prometheus.CounterVec) float64 {
	return testutil.ToFloat64(c)
}
