package kafkaio

import (
	"testing"

	"github.com/driftwatch/driftwatch/internal/testenv"
)

// TestKafkaBrokerCommitResume runs the commit-and-resume contract against
// the real Apache Kafka broker named by DRIFTWATCH_TEST_KAFKA_BROKERS
// (scripts/kafka.sh start). Outside CI it skips when none is set; under
// CI=true that fails.
func TestKafkaBrokerCommitResume(t *testing.T) {
	testCommitResume(t, testenv.KafkaBrokers(t))
}

// TestKafkaBrokerPing checks readiness against the real broker.
func TestKafkaBrokerPing(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	if err := Ping(t.Context(), Options{Brokers: brokers}); err != nil {
		t.Fatalf("Ping(%v) = %v", brokers, err)
	}
}
