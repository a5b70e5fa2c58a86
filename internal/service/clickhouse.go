package service

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/migration"
)

// OpenClickHouse connects to ClickHouse and applies the migrations, waiting
// (WaitFor) while the server is still starting: what every service does
// before its work. Only the owner of the retention (ingest) applies the
// TTLs; the others leave them (migration.ApplySchema).
func OpenClickHouse(ctx context.Context, log *slog.Logger, c config.ClickHouse, opts migration.Config, ownsRetention bool) (driver.Conn, error) {
	open := migration.OpenSchema
	if ownsRetention {
		open = migration.Open
	}
	var conn driver.Conn
	err := WaitFor(ctx, log, "connect to ClickHouse "+chclient.Redact(c.ClickHouseURL), func(ctx context.Context) (err error) {
		conn, err = open(ctx, chclient.FromConfig(c), opts)
		return err
	})
	return conn, err
}

// ttlCheckEvery is how often a service that does not own the retention
// compares the tables' TTLs with its own settings again (the owner may
// change them while it runs).
const ttlCheckEvery = 10 * time.Minute

// ttlCheck compares the tables' TTLs with a service's retention settings
// and reports a difference: a warning when the set of differing tables
// changes, and driftwatch_retention_ttl_mismatch{service,table}.
type ttlCheck struct {
	log      *slog.Logger
	conn     migration.Querier
	opts     migration.Config
	mismatch *prometheus.GaugeVec
	last     string
}

func newTTLCheck(reg prometheus.Registerer, name string, log *slog.Logger, conn migration.Querier, opts migration.Config) *ttlCheck {
	return &ttlCheck{log: log, conn: conn, opts: opts,
		mismatch: promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{
			Name:        "driftwatch_retention_ttl_mismatch",
			Help:        "1 when the table's TTL keeps other days than this service's retention settings (retention_days, rollup_retention_days, retention); ingest and driftwatch migrate own the TTLs.",
			ConstLabels: prometheus.Labels{"service": name},
		}, []string{"table"})}
}

// check compares once; a failed query is logged and retried next time.
func (c *ttlCheck) check(ctx context.Context) {
	ms, err := migration.CheckTTLs(ctx, c.conn, c.opts)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("check the tables' TTLs against the retention settings", "err", err)
		}
		return
	}
	stmts, _ := migration.Statements(c.opts) // valid: CheckTTLs rendered them
	for _, s := range stmts {
		if s.IsTTL() {
			c.mismatch.WithLabelValues(s.Table).Set(0)
		}
	}
	var tables []string
	for _, m := range ms {
		c.mismatch.WithLabelValues(m.Table).Set(1)
		tables = append(tables, m.String())
	}
	if now := strings.Join(tables, "; "); now != c.last {
		c.last = now
		if now != "" {
			c.log.Warn("a table's TTL differs from this service's retention settings; ingest and driftwatch migrate own the TTLs, so set the same retention there or here",
				"tables", now)
		}
	}
}

func (c *ttlCheck) run(ctx context.Context) {
	t := time.NewTicker(ttlCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.check(ctx)
		}
	}
}
