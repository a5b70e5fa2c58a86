// Package deploy holds deployment files (ClickHouse DDL, Prometheus rules and configuration, Alertmanager configuration, Grafana provisioning and dashboards, Kafka broker files) and the tests that validate them.
package deploy
