package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/ingest"
	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/loadgen"
	"github.com/driftwatch/driftwatch/internal/teststack"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
	"github.com/driftwatch/driftwatch/services/driftwatch/gen"
)

// Targets the figures are printed next to.
const (
	targetE2E       = 50000.0 // events/s, produced → acknowledged → committed
	targetRatio     = 0.5     // e2e / raw
	targetRSSMiB    = 512.0
	targetFreshP99s = 2.0
)

// benchIngestConfig is the configuration of `driftwatch bench ingest`.
type benchIngestConfig struct {
	config.Kafka      `yaml:",inline"`
	config.ClickHouse `yaml:",inline"`
	config.Logging    `yaml:",inline"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout" env:"DRIFTWATCH_SHUTDOWN_TIMEOUT" flag:"shutdown-timeout" help:"how long ingest and the producers may take to stop"`
	Events            int64         `yaml:"events" flag:"events" help:"inferences to pre-produce for the throughput phases"`
	Repeat            int           `yaml:"repeat" flag:"repeat" help:"run every phase this many times (fresh topics and database each time) and print medians"`
	IngestBin         string        `yaml:"ingest_bin" flag:"ingest-bin" help:"ingest binary to run; empty looks for ingest next to this binary, then bin/ingest"`
	InProcess         bool          `yaml:"in_process" flag:"in-process" help:"run ingest inside this process instead of as a separate one (its RSS is then not measured)"`
	Partitions        int           `yaml:"partitions" flag:"partitions" help:"partitions of the benchmark topics"`
	BatchRows         int           `yaml:"batch_rows" flag:"batch-rows" help:"ingest batch_rows; 0 keeps ingest's default"`
	BatchAge          time.Duration `yaml:"batch_age" flag:"batch-age" help:"ingest batch_age; 0 keeps ingest's default"`
	DuplicateShare    float64       `yaml:"duplicate_share" flag:"duplicate-share" help:"share of producer duplicates among the inferences"`
	MalformedShare    float64       `yaml:"malformed_share" flag:"malformed-share" help:"share of malformed inferences (dead-lettered)"`
	EventBytes        int           `yaml:"event_bytes" flag:"event-bytes" help:"pad each inference with a categorical feature \"payload\" to this many bytes of JSON; 0 keeps loadgen's ~800 bytes (at most 1047552: 1 MiB less Kafka's record overhead)"`
	BatchBytes        int           `yaml:"batch_bytes" flag:"batch-bytes" help:"ingest batch_bytes; 0 keeps ingest's default"`
	QueueBytes        int           `yaml:"queue_bytes" flag:"queue-bytes" help:"ingest queue_bytes; 0 keeps ingest's default"`
	FreshnessFor      time.Duration `yaml:"freshness_duration" flag:"freshness-duration" help:"length of the freshness phase; 0 skips it"`
	FreshnessRate     float64       `yaml:"freshness_rate" flag:"freshness-rate" help:"inferences/s during the freshness phase; 0 means half the measured end-to-end rate"`
	SkipRaw           bool          `yaml:"skip_raw" flag:"skip-raw" help:"skip the raw fetch+decode phase"`
	PhaseTimeout      time.Duration `yaml:"phase_timeout" flag:"phase-timeout" help:"longest any one phase may take"`
	Keep              bool          `yaml:"keep" flag:"keep" help:"keep the benchmark topics and database instead of deleting them"`
	CPUPids           []string      `yaml:"cpu_pids" flag:"cpu-pids" help:"comma list of more process ids (the Kafka broker, clickhouse-embedded) whose CPU use during the e2e phase is printed"`
	CPUProfile        string        `yaml:"cpuprofile" flag:"cpuprofile" help:"with -in-process, write a CPU profile of the e2e phase to this file (go tool pprof)"`
}

func defaultBenchIngestConfig() *benchIngestConfig {
	return &benchIngestConfig{
		Kafka:           config.DefaultKafka(),
		ClickHouse:      config.DefaultClickHouse(),
		Logging:         config.DefaultLogging(),
		ShutdownTimeout: 30 * time.Second,
		Events:          500000,
		Repeat:          1,
		Partitions:      3,
		FreshnessFor:    30 * time.Second,
		PhaseTimeout:    10 * time.Minute,
	}
}

// Validate reports every invalid setting, each naming its key.
func (c *benchIngestConfig) Validate() error {
	var p problems
	inRange(&p, "events", c.Events, 1, 100_000_000)
	p.repeat(c.Repeat)
	if c.InProcess && c.IngestBin != "" {
		p.add("in_process, ingest_bin: give at most one")
	}
	for _, pid := range c.CPUPids {
		if n, err := strconv.Atoi(pid); err != nil || n < 1 {
			p.add("cpu_pids: %q is not a process id", pid)
		}
	}
	if c.CPUProfile != "" && !c.InProcess {
		p.add("cpuprofile: needs -in-process")
	}
	inRange(&p, "partitions", c.Partitions, 1, 1000)
	if c.BatchRows < 0 || c.BatchRows > 10_000_000 {
		p.add("batch_rows: must be from 0 (ingest's default) to 10000000, got %d", c.BatchRows)
	}
	if c.EventBytes != 0 && (c.EventBytes < 1024 || c.EventBytes > maxBenchEventBytes) {
		p.add("event_bytes: must be 0 (loadgen's events) or from 1024 to %d (1 MiB less Kafka's record overhead), got %d", maxBenchEventBytes, c.EventBytes)
	}
	if c.BatchBytes != 0 && (c.BatchBytes < 64<<10 || c.BatchBytes > 1<<30) {
		p.add("batch_bytes: must be 0 (ingest's default) or from 65536 to 1073741824, got %d", c.BatchBytes)
	}
	if c.QueueBytes != 0 && (c.QueueBytes < 64<<10 || c.QueueBytes > 1<<30) {
		p.add("queue_bytes: must be 0 (ingest's default) or from 65536 to 1073741824, got %d", c.QueueBytes)
	}
	if c.BatchAge != 0 && c.BatchAge < 10*time.Millisecond {
		p.add("batch_age: must be 0 (ingest's default) or at least 10ms, got %s", c.BatchAge)
	}
	if c.DuplicateShare < 0 || c.MalformedShare < 0 || c.DuplicateShare+c.MalformedShare >= 1 {
		p.add("duplicate_share, malformed_share: must not be negative and must add up to less than 1, got %g and %g", c.DuplicateShare, c.MalformedShare)
	}
	if c.FreshnessFor < 0 || (c.FreshnessFor > 0 && c.FreshnessFor < time.Second) {
		p.add("freshness_duration: must be 0 (skip) or at least 1s, got %s", c.FreshnessFor)
	}
	if c.FreshnessRate < 0 {
		p.add("freshness_rate: must not be negative, got %g", c.FreshnessRate)
	}
	if c.PhaseTimeout < time.Second {
		p.add("phase_timeout: must be at least 1s, got %s", c.PhaseTimeout)
	}
	if c.ShutdownTimeout <= 0 {
		p.add("shutdown_timeout: must be positive, got %s", c.ShutdownTimeout)
	}
	return p.join(c.Kafka.Validate(), c.ClickHouse.Validate(), c.Logging.Validate())
}

func ingestCommand() command.Command {
	return command.Command{
		Name:    "bench ingest",
		Summary: "measure ingest against the real Kafka and ClickHouse: events/s, raw ratio, peak RSS, freshness",
		Usage: `driftwatch bench ingest measures the ingest path against the configured Kafka and
ClickHouse and prints its figures next to the targets. Every run uses fresh
topics (-topic-prefix plus a unique run id) and a fresh ClickHouse database (named after
the run, beside the one in the URL), and deletes both at the end unless -keep.
Events are loadgen's default shape: one model, 20 numeric and 5 categorical
features, about 800 bytes of JSON; no outcomes or business metrics.
-event-bytes N pads every inference to N bytes with a categorical feature
"payload" of random letters (for ingest's memory with large events: try
-event-bytes 1047552 -events 2000); -batch-bytes and -queue-bytes pass
ingest's byte bounds.

Phases, in order (progress on stderr):
  produce    -events inferences, stamped from now-1h to now, are written to
             <prefix>inferences as fast as Kafka takes them.
  raw        a consumer group of its own reads them back with kafka-go's
             FetchMessage (ingest's reader settings) and decodes each with
             the schemas decoder; no ClickHouse. Gives the raw events/s.
  e2e        ingest starts (a separate process: -ingest-bin, or ingest next
             to this binary, or bin/ingest; or -in-process) on those topics;
             the clock runs from its /readyz to the moment every partition's
             committed offset reached the end offset: produced, acknowledged
             by ClickHouse, committed. Then count() FROM inferences FINAL
             must equal the unique valid inferences sent. Prints events/s,
             the ratio e2e/raw and ingest's peak RSS (VmHWM).
  freshness  with ingest still running, inferences stamped with the wall
             clock are produced at -freshness-rate (default half the e2e
             rate) for -freshness-duration; every 100ms the benchmark samples
             now - max(timestamp) of inferences (now is the middle between
             sending the query and its answer). Prints its p50 and p99, and
             the same quantiles of ingested_at - timestamp per event.
Ingest's peak RSS is read last (it covers every phase it ran in).
With -repeat k every phase runs k times and the medians are printed too.
Figures are measurements on this machine, never assertions: Kafka,
ClickHouse, ingest and this benchmark share its CPUs.`,
		Config: func() config.Validator { return defaultBenchIngestConfig() },
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			return runBenchIngest(ctx, c.(*benchIngestConfig), env)
		},
	}
}

// benchResult is one run's figures; NaN-free zero means "not measured".
type benchResult struct {
	Produced     int64
	ProduceRate  float64
	RawRate      float64
	E2ERate      float64
	E2ESeconds   float64
	StartSeconds float64
	RSSMiB       float64
	FreshRate    float64
	FreshP50     float64
	FreshP99     float64
	RowP50       float64
	RowP99       float64
	Samples      int
	// CPU during the e2e phase, in cores busy on average.
	MachineCores, IngestCores float64
	NumCPU                    int
	Others                    []string // "comm[pid] cores" of -cpu-pids
	BenchCores                float64  // this benchmark (polling, not producing)
	Unrelated                 float64  // busy minus everything named above
	// Ingest's flushes up to the end of the e2e phase: count, mean
	// seconds (insert + dead letters + commit) and mean rows.
	Flushes, FlushSeconds, BatchRows float64
}

// cpuSnap is the machine's busy CPU time and one process's CPU time, in
// seconds, at wall time wall (seconds).
type cpuSnap struct{ busy, proc, wall float64 }

// readCPU reads /proc/stat and /proc/<pid>/stat; zeros when unavailable.
func readCPU(pid int) cpuSnap {
	const hz = 100 // USER_HZ on Linux
	s := cpuSnap{wall: float64(time.Now().UnixNano()) / 1e9}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		for i := 1; i < len(f) && i <= 8; i++ {
			v, _ := strconv.ParseFloat(f[i], 64)
			if i != 4 && i != 5 { // idle, iowait
				s.busy += v / hz
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := strings.LastIndexByte(string(b), ')'); i > 0 {
			f := strings.Fields(string(b)[i+1:])
			if len(f) > 12 {
				u, _ := strconv.ParseFloat(f[11], 64)
				sy, _ := strconv.ParseFloat(f[12], 64)
				s.proc = (u + sy) / hz
			}
		}
	}
	return s
}

func runBenchIngest(ctx context.Context, cfg *benchIngestConfig, env command.Env) error {
	bin := ""
	if !cfg.InProcess {
		var err error
		if bin, err = findIngestBin(cfg.IngestBin); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "bench: ingest binary %s\n", bin)
	}
	var results []benchResult
	for i := range cfg.Repeat {
		fmt.Fprintf(env.Stderr, "bench: run %d of %d\n", i+1, cfg.Repeat)
		r, err := benchIngestOnce(ctx, cfg, env, bin, i)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		results = append(results, r)
		printBenchRun(env.Stdout, cfg, i+1, r)
	}
	if cfg.Repeat > 1 {
		printBenchMedians(env.Stdout, cfg, results)
	}
	return nil
}

func findIngestBin(flagged string) (string, error) {
	if flagged != "" {
		if _, err := os.Stat(flagged); err != nil {
			return "", fmt.Errorf("ingest_bin: %w", err)
		}
		return flagged, nil
	}
	var tried []string
	if exe, err := os.Executable(); err == nil {
		tried = append(tried, filepath.Join(filepath.Dir(exe), "ingest"))
	}
	tried = append(tried, filepath.Join("bin", "ingest"))
	for _, p := range tried {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return filepath.Abs(p)
		}
	}
	return "", fmt.Errorf("no ingest binary at %s: run `make build`, or pass -ingest-bin or -in-process", strings.Join(tried, " or "))
}

// benchRun is one run's fresh topics and database.
type benchRun struct {
	cfg    *benchIngestConfig
	env    command.Env
	id     string
	kopts  kafkaio.Options
	chURL  string
	conn   driver.Conn
	client *kafka.Client
	group  string
	topics []string // full names of the topics written
}

func benchIngestOnce(ctx context.Context, cfg *benchIngestConfig, env command.Env, bin string, idx int) (res benchResult, err error) {
	id := fmt.Sprintf("bench%d%04d", time.Now().Unix(), rand.IntN(10000))
	chURL, err := withDatabase(cfg.ClickHouseURL, id)
	if err != nil {
		return res, err
	}
	kopts, err := kafkaio.FromConfig(cfg.Kafka, "driftwatch-bench", nil)
	if err != nil {
		return res, err
	}
	kopts.TopicPrefix = cfg.TopicPrefix + id + "."
	client, closeClient := kafkaio.NewClient(kopts)
	defer closeClient()
	client.Timeout = 30 * time.Second
	r := &benchRun{
		cfg: cfg, env: env, id: id, chURL: chURL,
		kopts:  kopts,
		client: client,
		group:  "driftwatch-ingest-" + id,
	}
	for _, t := range append(gen.Topics(), schemas.TopicDeadLetters) {
		r.topics = append(r.topics, r.kopts.Topic(t))
	}
	defer func() {
		if cfg.Keep {
			fmt.Fprintf(env.Stderr, "bench: kept topics %s* and database %s\n", r.kopts.Prefix(), id)
			return
		}
		if cerr := r.cleanup(); cerr != nil {
			fmt.Fprintf(env.Stderr, "bench: cleanup: %v\n", cerr)
		}
	}()

	// produce
	specs := make([]kafkaio.TopicSpec, 0, len(r.topics))
	for _, t := range r.topics {
		spec := kafkaio.TopicSpec{Name: t, Partitions: cfg.Partitions, ReplicationFactor: r.kopts.ReplicationFactor}
		if r.kopts.MinInsyncReplicas > 0 {
			spec.Configs = map[string]string{"min.insync.replicas": strconv.Itoa(r.kopts.MinInsyncReplicas)}
		}
		specs = append(specs, spec)
	}
	ectx, cancel := context.WithTimeout(ctx, time.Minute)
	err = kafkaio.EnsureTopics(ectx, r.kopts, specs)
	cancel()
	if err != nil {
		return res, err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	step := min(10*time.Millisecond, max(time.Hour/time.Duration(cfg.Events), time.Microsecond))
	stats, sent, took, err := r.produce(ctx, uint64(idx+1), cfg.Events, now.Add(-time.Hour), step, 0)
	if err != nil {
		return res, err
	}
	res.Produced = sent
	res.ProduceRate = float64(sent) / took.Seconds()
	fmt.Fprintf(env.Stderr, "bench: produced %d messages in %s (%.0f/s)\n", sent, took.Round(time.Millisecond), res.ProduceRate)
	ends, err := r.endOffsets(ctx)
	if err != nil {
		return res, err
	}

	// raw
	if !cfg.SkipRaw {
		rate, err := r.raw(ctx, ends)
		if err != nil {
			return res, err
		}
		res.RawRate = rate
	}

	// e2e
	chCfg := chclient.Config{URL: chURL, User: cfg.ClickHouseUser, Password: cfg.ClickHousePassword.Reveal()}
	ing, err := r.startIngest(ctx, bin)
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := ing.stop(cfg.ShutdownTimeout + 10*time.Second); serr != nil && err == nil {
			err = serr
		}
	}()
	res.StartSeconds = ing.ready.Sub(ing.started).Seconds()
	fmt.Fprintf(env.Stderr, "bench: ingest ready after %.2fs (migration, topics, readers)\n", res.StartSeconds)
	stopProfile, err := startCPUProfile(cfg.CPUProfile, idx)
	if err != nil {
		return res, err
	}
	cpu0, self0 := readCPU(ing.pid()), readCPU(os.Getpid())
	others0 := map[string]float64{}
	for _, pid := range cfg.CPUPids {
		n, _ := strconv.Atoi(pid)
		others0[pid] = readCPU(n).proc
	}
	secs, err := r.waitCommitted(ctx, ends, ing)
	stopProfile()
	cpu1, self1 := readCPU(ing.pid()), readCPU(os.Getpid())
	res.Flushes, res.FlushSeconds, res.BatchRows = ing.flushStats(ctx)
	wall := cpu1.wall - cpu0.wall
	res.Unrelated = (cpu1.busy - cpu0.busy) / wall
	if !cfg.InProcess {
		res.BenchCores = (self1.proc - self0.proc) / wall
		res.Unrelated -= res.BenchCores
	}
	res.Unrelated -= (cpu1.proc - cpu0.proc) / wall
	for _, pid := range cfg.CPUPids {
		n, _ := strconv.Atoi(pid)
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", n))
		c := (readCPU(n).proc - others0[pid]) / wall
		res.Unrelated -= c
		res.Others = append(res.Others, fmt.Sprintf("%s[%s] %.2f", strings.TrimSpace(string(comm)), pid, c))
	}
	if err != nil {
		return res, err
	}
	res.E2ESeconds = secs
	res.MachineCores = (cpu1.busy - cpu0.busy) / (cpu1.wall - cpu0.wall)
	res.IngestCores = (cpu1.proc - cpu0.proc) / (cpu1.wall - cpu0.wall)
	res.NumCPU = runtime.NumCPU()
	res.E2ERate = float64(sent) / secs
	conn, err := chclient.Open(ctx, chCfg, false)
	if err != nil {
		return res, err
	}
	r.conn = conn
	defer conn.Close()
	if err := r.verify(ctx, stats.Inferences, 0); err != nil {
		return res, err
	}

	// freshness
	if cfg.FreshnessFor > 0 {
		rate := cfg.FreshnessRate
		if rate == 0 {
			rate = res.E2ERate / 2
		}
		res.FreshRate = rate
		if err := r.freshness(ctx, rate, uint64(idx+1)<<32, stats.Inferences, &res, ing); err != nil {
			return res, err
		}
	}
	res.RSSMiB = ing.peakRSS()
	return res, nil
}

// startCPUProfile profiles this process into path (run idx > 0 gets a
// numbered file) until the returned func is called.
func startCPUProfile(path string, idx int) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	if idx > 0 {
		path += "." + strconv.Itoa(idx+1)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// withDatabase returns u with its database replaced by db.
func withDatabase(raw, db string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("clickhouse_url: %w", err)
	}
	u.Path = "/" + db
	return u.String(), nil
}

// produce writes ticks inferences of a seeded generator to the run's
// topics, paced at rate (0: as fast as Kafka takes them).
func (r *benchRun) produce(ctx context.Context, seed uint64, ticks int64, start time.Time, step time.Duration, rate float64) (loadgen.Stats, int64, time.Duration, error) {
	lc := loadgen.DefaultConfig()
	lc.Seed = seed
	lc.Start, lc.Step = start, step
	lc.Outcomes.Share = 0
	lc.BusinessMetrics.Enabled = false
	lc.DuplicateShare, lc.MalformedShare = r.cfg.DuplicateShare, r.cfg.MalformedShare
	g, err := loadgen.New(lc)
	if err != nil {
		return loadgen.Stats{}, 0, 0, err
	}
	p, err := gen.NewProducer(r.kopts, gen.Topics(), lc.MaxBytes)
	if err != nil {
		return loadgen.Stats{}, 0, 0, err
	}
	pad := newPadder(r.cfg.EventBytes, seed)
	began := time.Now()
	stop := benchProgress(r.env.Stderr, "produce", p.Sent, ticks)
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PhaseTimeout)
	defer cancel()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for g.Ticks() < ticks && pctx.Err() == nil && !p.Failed() {
		if rate > 0 {
			// Stamp each event with the wall clock, so freshness measures
			// the pipeline and not the generator.
			ev := pad.event(g.Next())
			p.Add(pctx, ev)
			due := began.Add(time.Duration(float64(g.Ticks()) / rate * float64(time.Second)))
			if d := time.Until(due); d > 2*time.Millisecond {
				p.Flush(pctx)
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-pctx.Done():
				}
			}
			continue
		}
		p.Add(pctx, pad.event(g.Next()))
	}
	cerr := p.Close(r.cfg.ShutdownTimeout)
	stop()
	took := time.Since(began)
	if err := errors.Join(cerr, pctx.Err()); err != nil {
		return loadgen.Stats{}, 0, 0, fmt.Errorf("produce: %w", err)
	}
	return g.Stats(), p.Sent(), took, nil
}

// benchProgress prints "bench: <what> n/total (rate/s)" to w every 2s until stop.
func benchProgress(w io.Writer, what string, n func() int64, total int64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		last, lastAt := int64(0), time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				cur := n()
				fmt.Fprintf(w, "bench: %s %d/%d (%.0f/s)\n", what, cur, total, float64(cur-last)/now.Sub(lastAt).Seconds())
				last, lastAt = cur, now
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// endOffsets returns the end offset of every partition of every topic that
// has messages, by topic and partition.
func (r *benchRun) endOffsets(ctx context.Context) (map[string]map[int]int64, error) {
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range r.topics {
		for p := range r.cfg.Partitions {
			req.Topics[t] = append(req.Topics[t], kafka.LastOffsetOf(p))
		}
	}
	res, err := r.client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	out := map[string]map[int]int64{}
	for t, parts := range res.Topics {
		for _, p := range parts {
			if p.Error != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %w", t, p.Partition, p.Error)
			}
			if p.LastOffset > 0 && t != r.kopts.Topic(schemas.TopicDeadLetters) {
				if out[t] == nil {
					out[t] = map[int]int64{}
				}
				out[t][p.Partition] = p.LastOffset
			}
		}
	}
	return out, nil
}

func sumOffsets(ends map[string]map[int]int64) int64 {
	var n int64
	for _, parts := range ends {
		for _, o := range parts {
			n += o
		}
	}
	return n
}

// raw reads every message back with its own consumer group and decodes it,
// one reader and decoder per topic as ingest has, and returns messages/s.
func (r *benchRun) raw(ctx context.Context, ends map[string]map[int]int64) (float64, error) {
	want := sumOffsets(ends)
	var read atomic.Int64
	stop := benchProgress(r.env.Stderr, "raw fetch+decode", read.Load, want)
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, r.cfg.PhaseTimeout)
	defer cancel()
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(ends))
	for topic, parts := range ends {
		var n int64
		for _, o := range parts {
			n += o
		}
		short := strings.TrimPrefix(topic, r.kopts.Prefix())
		rd, err := kafkaio.NewReader(r.kopts, short, "bench-raw-"+r.id+"."+short)
		if err != nil {
			return 0, err
		}
		dec, err := schemas.NewDecoder(schemas.Options{})
		if err != nil {
			return 0, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer rd.Close()
			var (
				inf schemas.Inference
				out schemas.Outcome
				bm  schemas.BusinessMetric
			)
			for i := int64(0); i < n; i++ {
				msg, err := rd.FetchMessage(rctx)
				if err != nil {
					errs <- fmt.Errorf("raw fetch from %s after %d messages: %w", topic, i, err)
					return
				}
				kind, err := schemas.KindForMessage(msgHeader(msg, schemas.SchemaHeader), msg.Topic, r.kopts.Prefix())
				if err == nil {
					switch kind {
					case schemas.KindInference:
						_, err = dec.DecodeInference(msg.Value, &inf)
					case schemas.KindOutcome:
						_, err = dec.DecodeOutcome(msg.Value, &out)
					case schemas.KindBusinessMetric:
						_, err = dec.DecodeBusinessMetric(msg.Value, &bm)
					}
				}
				_ = err // invalid events cost the same to find out
				read.Add(1)
			}
		}()
	}
	wg.Wait()
	took := time.Since(began)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	rate := float64(want) / took.Seconds()
	fmt.Fprintf(r.env.Stderr, "bench: raw read and decoded %d messages in %s (%.0f/s)\n", want, took.Round(time.Millisecond), rate)
	return rate, nil
}

func msgHeader(msg kafka.Message, key string) string {
	for _, h := range msg.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// ingestProc is the ingest under test: a process (proc) or, with
// -in-process, a goroutine (done, err, cancel).
type ingestProc struct {
	started, ready time.Time
	proc           *teststack.Process
	done           chan struct{}
	err            error
	cancel         context.CancelFunc
	addr           string // HTTP address
}

func (r *benchRun) startIngest(ctx context.Context, bin string) (*ingestProc, error) {
	port, err := teststack.Port()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	icfg := ingest.DefaultConfig()
	icfg.Kafka, icfg.ClickHouse, icfg.Logging, icfg.ShutdownTimeout = r.cfg.Kafka, r.cfg.ClickHouse, r.cfg.Logging, r.cfg.ShutdownTimeout
	icfg.ClickHouseURL = r.chURL
	icfg.HTTPAddr = addr
	icfg.TopicPrefix = r.kopts.Prefix()
	icfg.ConsumerGroup = r.group
	icfg.TopicPartitions = r.cfg.Partitions
	icfg.LogLevel = "warn"
	if r.cfg.BatchRows > 0 {
		icfg.BatchRows = r.cfg.BatchRows
	}
	if r.cfg.BatchAge > 0 {
		icfg.BatchAge = r.cfg.BatchAge
	}
	if r.cfg.BatchBytes > 0 {
		icfg.BatchBytes = r.cfg.BatchBytes
	}
	if r.cfg.QueueBytes > 0 {
		icfg.QueueBytes = r.cfg.QueueBytes
	}
	p := &ingestProc{started: time.Now(), addr: addr}
	if bin == "" {
		icfg.MemoryLimit = 0 // it would be this process's, producers included
		ictx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		p.cancel, p.done = cancel, make(chan struct{})
		go func() { p.err = ingest.RunService(ictx, icfg); close(p.done) }()
	} else {
		p.proc, err = teststack.Launch("ingest", bin, append(icfg.Kafka.Env(), // SASL and TLS; brokers and prefix again below
			"DRIFTWATCH_KAFKA_BROKERS="+strings.Join(icfg.KafkaBrokers, ","),
			"DRIFTWATCH_CLICKHOUSE_URL="+icfg.ClickHouseURL,
			"DRIFTWATCH_HTTP_ADDR="+icfg.HTTPAddr,
			"DRIFTWATCH_TOPIC_PREFIX="+icfg.TopicPrefix,
			"DRIFTWATCH_INGEST_CONSUMER_GROUP="+icfg.ConsumerGroup,
			"DRIFTWATCH_INGEST_TOPIC_PARTITIONS="+strconv.Itoa(icfg.TopicPartitions),
			"DRIFTWATCH_INGEST_BATCH_ROWS="+strconv.Itoa(icfg.BatchRows),
			"DRIFTWATCH_INGEST_BATCH_AGE="+icfg.BatchAge.String(),
			"DRIFTWATCH_INGEST_BATCH_BYTES="+strconv.Itoa(icfg.BatchBytes),
			"DRIFTWATCH_INGEST_QUEUE_BYTES="+strconv.Itoa(icfg.QueueBytes),
			"DRIFTWATCH_LOG_LEVEL="+icfg.LogLevel,
		))
		if err != nil {
			return nil, err
		}
	}
	if err := teststack.PollHTTP(ctx, "http://"+addr+"/readyz", r.cfg.PhaseTimeout, p.proc); err != nil {
		_ = p.stop(5 * time.Second)
		return nil, fmt.Errorf("ingest not ready: %w", err)
	}
	if p.exited() {
		return nil, fmt.Errorf("ingest exited before it was ready: %v", p.err)
	}
	p.ready = time.Now()
	return p, nil
}

func (p *ingestProc) exited() bool {
	if p.proc != nil {
		return p.proc.Exited()
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// flushStats reads ingest's /metrics: the number of flushes, their mean
// duration and mean rows.
func (p *ingestProc) flushStats(ctx context.Context) (n, secs, rows float64) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sumSecs, sumRows, cnt float64
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		_, val, _ := strings.Cut(rest, "} ")
		v, _ := strconv.ParseFloat(strings.TrimSpace(val), 64)
		switch name {
		case "driftwatch_ingest_flush_duration_seconds_sum":
			sumSecs += v
		case "driftwatch_ingest_flush_duration_seconds_count":
			cnt += v
		case "driftwatch_ingest_batch_rows_sum":
			sumRows += v
		}
	}
	if cnt == 0 {
		return 0, 0, 0
	}
	return cnt, sumSecs / cnt, sumRows / cnt
}

// pid is the ingest process's id (this process's with -in-process).
func (p *ingestProc) pid() int {
	if p.proc != nil {
		return p.proc.Pid()
	}
	return os.Getpid()
}

// peakRSS returns the ingest process's VmHWM in MiB, or 0 when ingest runs
// in this process.
func (p *ingestProc) peakRSS() float64 {
	if p.proc == nil {
		return 0
	}
	return vmHWM(p.proc.Pid())
}

func vmHWM(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func (p *ingestProc) stop(timeout time.Duration) error {
	if p.proc != nil {
		if err := p.proc.Stop(timeout); err != nil {
			return fmt.Errorf("ingest ended with %w:\n%s", err, tail(p.proc.Output()))
		}
		return nil
	}
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(timeout):
		return fmt.Errorf("ingest did not stop within %s", timeout)
	}
	if p.err != nil {
		return fmt.Errorf("ingest ended with %w", p.err)
	}
	return nil
}

// tail is the end of a process's output, for an error message.
func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// committed returns the sum over ends' partitions of min(committed, end).
func (r *benchRun) committed(ctx context.Context, ends map[string]map[int]int64) (int64, error) {
	var n int64
	for topic, parts := range ends {
		short := strings.TrimPrefix(topic, r.kopts.Prefix())
		req := &kafka.OffsetFetchRequest{GroupID: r.kopts.Prefix() + r.group + "." + short, Topics: map[string][]int{}}
		for p := range parts {
			req.Topics[topic] = append(req.Topics[topic], p)
		}
		res, err := r.client.OffsetFetch(ctx, req)
		if err != nil {
			return 0, fmt.Errorf("fetch committed offsets of %s: %w", req.GroupID, err)
		}
		if res.Error != nil {
			return 0, fmt.Errorf("fetch committed offsets of %s: %w", req.GroupID, res.Error)
		}
		for _, p := range res.Topics[topic] {
			if p.CommittedOffset > 0 {
				n += min(p.CommittedOffset, parts[p.Partition])
			}
		}
	}
	return n, nil
}

// waitCommitted polls the group's committed offsets every 100ms until they
// reach ends, and returns the seconds since ingest was ready.
func (r *benchRun) waitCommitted(ctx context.Context, ends map[string]map[int]int64, p *ingestProc) (float64, error) {
	want := sumOffsets(ends)
	var done atomic.Int64
	stop := benchProgress(r.env.Stderr, "e2e committed", done.Load, want)
	defer stop()
	deadline := time.Now().Add(r.cfg.PhaseTimeout)
	for {
		n, err := r.committed(ctx, ends)
		if err == nil {
			done.Store(n)
			if n >= want {
				secs := time.Since(p.ready).Seconds()
				fmt.Fprintf(r.env.Stderr, "bench: ingest committed %d messages in %.2fs (%.0f/s)\n", want, secs, float64(want)/secs)
				return secs, nil
			}
		}
		if p.exited() {
			return 0, fmt.Errorf("ingest exited: %v\n%s", p.err, p.output())
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("ingest committed %d of %d messages within %s (last error %v)\n%s", n, want, r.cfg.PhaseTimeout, err, p.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *benchRun) count(ctx context.Context, q string) (uint64, error) {
	var n uint64
	if err := r.conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: %w", q, err)
	}
	return n, nil
}

// verify checks that inferences holds exactly want unique events, waiting
// up to wait for the last of them to land.
func (r *benchRun) verify(ctx context.Context, want int64, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		n, err := r.count(ctx, "SELECT count() FROM inferences FINAL")
		if err != nil {
			return err
		}
		if n == uint64(want) {
			fmt.Fprintf(r.env.Stderr, "bench: verified count() FROM inferences FINAL = %d\n", n)
			return nil
		}
		if n > uint64(want) || time.Now().After(deadline) {
			return fmt.Errorf("inferences FINAL holds %d rows, want the %d unique valid inferences sent", n, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// freshness produces at rate with wall-clock timestamps for FreshnessFor
// while sampling now - max(timestamp) every 100ms.
func (r *benchRun) freshness(ctx context.Context, rate float64, seed uint64, before int64, res *benchResult, p *ingestProc) error {
	ticks := int64(rate * r.cfg.FreshnessFor.Seconds())
	start := time.Now().UTC().Truncate(time.Millisecond)
	step := max(time.Duration(float64(time.Second)/rate), time.Nanosecond)
	fmt.Fprintf(r.env.Stderr, "bench: freshness: producing %d inferences at %.0f/s for %s\n", ticks, rate, r.cfg.FreshnessFor)
	var samples []float64
	sctx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		q := fmt.Sprintf("SELECT toUnixTimestamp64Milli(max(timestamp)) FROM inferences WHERE timestamp >= fromUnixTimestamp64Milli(%d)", start.UnixMilli())
		for {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
			var ms int64
			sent := time.Now()
			qctx, cancel := context.WithTimeout(sctx, 5*time.Second)
			err := r.conn.QueryRow(qctx, q).Scan(&ms)
			cancel()
			// The query saw the table somewhere between sending and
			// answering: take the middle, so a slow answer is not counted
			// as staleness.
			now := sent.Add(time.Since(sent) / 2)
			if err != nil || ms < start.UnixMilli() {
				continue // nothing written yet
			}
			samples = append(samples, now.Sub(time.UnixMilli(ms)).Seconds())
		}
	}()
	stats, sent, took, err := r.produce(ctx, seed, ticks, start, step, rate)
	// Let the last batch land before the sampling stops.
	if err == nil {
		time.Sleep(2 * time.Second)
	}
	stopSampling()
	wg.Wait()
	if err != nil {
		return err
	}
	fmt.Fprintf(r.env.Stderr, "bench: freshness: produced %d messages in %s (%.0f/s), %d samples\n", sent, took.Round(time.Millisecond), float64(sent)/took.Seconds(), len(samples))
	if len(samples) == 0 {
		return fmt.Errorf("freshness: no inference of the phase became visible\n%s", p.output())
	}
	res.Samples = len(samples)
	res.FreshP50, res.FreshP99 = nearestRank(samples, 0.5), nearestRank(samples, 0.99)
	var p50, p99 float64
	q := fmt.Sprintf("SELECT quantileExact(0.5)(d), quantileExact(0.99)(d) FROM (SELECT toFloat64(dateDiff('millisecond', timestamp, ingested_at))/1000 AS d FROM inferences WHERE timestamp >= fromUnixTimestamp64Milli(%d))", start.UnixMilli())
	if err := r.conn.QueryRow(ctx, q).Scan(&p50, &p99); err != nil {
		return fmt.Errorf("per-event freshness: %w", err)
	}
	res.RowP50, res.RowP99 = p50, p99
	return r.verify(ctx, before+stats.Inferences, time.Minute)
}

func nearestRank(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[min(i, len(s)-1)]
}

func (r *benchRun) cleanup() error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if res, err := r.client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: r.topics}); err != nil {
		errs = append(errs, fmt.Errorf("delete topics: %w", err))
	} else {
		for t, e := range res.Errors {
			if e != nil {
				errs = append(errs, fmt.Errorf("delete topic %s: %w", t, e))
			}
		}
	}
	conn, err := chclient.Open(ctx, chclient.Config{URL: r.cfg.ClickHouseURL, User: r.cfg.ClickHouseUser, Password: r.cfg.ClickHousePassword.Reveal()}, false)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+chsql.Ident(r.id)+" SYNC"); err != nil {
		errs = append(errs, fmt.Errorf("drop database %s: %w", r.id, err))
	}
	return errors.Join(errs...)
}

func targetVerdict(ok bool) string {
	if ok {
		return "meets"
	}
	return "MISSES"
}

func printBenchRun(w io.Writer, cfg *benchIngestConfig, n int, r benchResult) {
	fmt.Fprintf(w, "run %d: produced %d messages at %.0f/s\n", n, r.Produced, r.ProduceRate)
	printFigures(w, cfg, r)
}

func printFigures(w io.Writer, cfg *benchIngestConfig, r benchResult) {
	fmt.Fprintf(w, "  e2e        %9.0f events/s   (%.2fs after ingest was ready; ready after %.2fs)   target >= %.0f: %s\n",
		r.E2ERate, r.E2ESeconds, r.StartSeconds, targetE2E, targetVerdict(r.E2ERate >= targetE2E))
	if r.MachineCores > 0 {
		who := "ingest"
		if cfg.InProcess {
			who = "this process (ingest in it)"
		}
		fmt.Fprintf(w, "  ingest cpu %9.1f µs/event   (CPU time of %s over events; robust to other load)\n", r.IngestCores*r.E2ESeconds/float64(r.Produced)*1e6, who)
		fmt.Fprintf(w, "  cpu e2e    %9.2f of %d cores busy: %s %.2f, the rest (Kafka, ClickHouse, this benchmark) %.2f\n",
			r.MachineCores, r.NumCPU, who, r.IngestCores, r.MachineCores-r.IngestCores)
		parts := append([]string{fmt.Sprintf("this benchmark %.2f", r.BenchCores)}, r.Others...)
		fmt.Fprintf(w, "             of which %s; unrelated processes %.2f\n", strings.Join(parts, ", "), r.Unrelated)
	}
	if r.Flushes > 0 {
		fmt.Fprintf(w, "  flushes    %9.0f           mean %.0f rows, %.3fs each (insert + dead letters + commit)\n", r.Flushes, r.BatchRows, r.FlushSeconds)
	}
	if r.RawRate > 0 {
		ratio := r.E2ERate / r.RawRate
		fmt.Fprintf(w, "  raw        %9.0f events/s   (FetchMessage + decode, no ClickHouse)\n", r.RawRate)
		fmt.Fprintf(w, "  e2e/raw    %9.2f                                                   target >= %.2f: %s\n", ratio, targetRatio, targetVerdict(ratio >= targetRatio))
	}
	if r.RSSMiB > 0 {
		fmt.Fprintf(w, "  peak RSS   %9.0f MiB        (VmHWM of the ingest process)                target <= %.0f: %s\n", r.RSSMiB, targetRSSMiB, targetVerdict(r.RSSMiB <= targetRSSMiB))
	} else if cfg.InProcess {
		fmt.Fprintf(w, "  peak RSS   not measured (-in-process)\n")
	}
	if r.Samples > 0 {
		fmt.Fprintf(w, "  freshness  p50 %.3fs p99 %.3fs at %.0f events/s (%d samples of now - max(timestamp))   target p99 <= %.0fs: %s\n",
			r.FreshP50, r.FreshP99, r.FreshRate, r.Samples, targetFreshP99s, targetVerdict(r.FreshP99 <= targetFreshP99s))
		fmt.Fprintf(w, "             per event ingested_at - timestamp: p50 %.3fs p99 %.3fs\n", r.RowP50, r.RowP99)
	}
}

func printBenchMedians(w io.Writer, cfg *benchIngestConfig, rs []benchResult) {
	med := func(f func(benchResult) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		sort.Float64s(xs)
		if len(xs)%2 == 1 {
			return xs[len(xs)/2]
		}
		return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	m := benchResult{
		Produced:     rs[0].Produced,
		ProduceRate:  med(func(r benchResult) float64 { return r.ProduceRate }),
		RawRate:      med(func(r benchResult) float64 { return r.RawRate }),
		E2ERate:      med(func(r benchResult) float64 { return r.E2ERate }),
		E2ESeconds:   med(func(r benchResult) float64 { return r.E2ESeconds }),
		StartSeconds: med(func(r benchResult) float64 { return r.StartSeconds }),
		RSSMiB:       med(func(r benchResult) float64 { return r.RSSMiB }),
		MachineCores: med(func(r benchResult) float64 { return r.MachineCores }),
		IngestCores:  med(func(r benchResult) float64 { return r.IngestCores }),
		BenchCores:   med(func(r benchResult) float64 { return r.BenchCores }),
		Unrelated:    med(func(r benchResult) float64 { return r.Unrelated }),
		NumCPU:       rs[0].NumCPU,
		Flushes:      med(func(r benchResult) float64 { return r.Flushes }),
		FlushSeconds: med(func(r benchResult) float64 { return r.FlushSeconds }),
		BatchRows:    med(func(r benchResult) float64 { return r.BatchRows }),
		FreshRate:    med(func(r benchResult) float64 { return r.FreshRate }),
		FreshP50:     med(func(r benchResult) float64 { return r.FreshP50 }),
		FreshP99:     med(func(r benchResult) float64 { return r.FreshP99 }),
		RowP50:       med(func(r benchResult) float64 { return r.RowP50 }),
		RowP99:       med(func(r benchResult) float64 { return r.RowP99 }),
		Samples:      rs[0].Samples,
	}
	fmt.Fprintf(w, "median of %d runs (e2e/raw is the median of the per-run ratios: %.2f):\n", len(rs),
		med(func(r benchResult) float64 {
			if r.RawRate == 0 {
				return 0
			}
			return r.E2ERate / r.RawRate
		}))
	printFigures(w, cfg, m)
}

// output is the tail of the ingest process's output ("" in process).
func (p *ingestProc) output() string {
	if p.proc == nil {
		return ""
	}
	return tail(p.proc.Output())
}

// maxBenchEventBytes is the largest -event-bytes: an event of 1 MiB less
// 1 KiB, so that with its key, headers and the record batch's overhead it
// stays below Kafka's default max.message.bytes (1 MiB + 12 bytes) even
// when it does not compress.
const maxBenchEventBytes = 1<<20 - 1<<10

// padder grows inferences to -event-bytes with a categorical feature
// "payload" of random letters and digits (about as incompressible as LZ4
// sees a real blob), so that ingest holds events of that size in memory.
type padder struct {
	size  int
	bytes []byte // size random characters, a prefix of which pads an event
}

func newPadder(size int, seed uint64) *padder {
	if size == 0 {
		return &padder{}
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	b := make([]byte, size)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return &padder{size: size, bytes: b}
}

// event pads an inference that has a features object and is shorter than
// the size; the rest (outcomes, malformed events without features, events
// already as large) it leaves as they are.
func (p *padder) event(ev loadgen.Event) loadgen.Event {
	const at, field = `"features":{`, `"payload":"",`
	if p.size == 0 || ev.Kind != schemas.KindInference || len(ev.Value)+len(field) >= p.size {
		return ev
	}
	i := bytes.Index(ev.Value, []byte(at))
	if i < 0 {
		return ev
	}
	i += len(at)
	sep := `",` // between the payload and the next feature
	if i < len(ev.Value) && ev.Value[i] == '}' {
		sep = `"` // no features: the payload is the only one
	}
	n := p.size - len(ev.Value) - len(`"payload":"`) - len(sep)
	v := make([]byte, 0, p.size)
	v = append(v, ev.Value[:i]...)
	v = append(v, `"payload":"`...)
	v = append(v, p.bytes[:n]...)
	v = append(v, sep...)
	v = append(v, ev.Value[i:]...)
	ev.Value = v
	return ev
}
