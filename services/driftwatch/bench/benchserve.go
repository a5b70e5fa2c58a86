package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/internal/teststack"
	"github.com/driftwatch/driftwatch/retrain"
	"github.com/driftwatch/driftwatch/retrain/model"
	"github.com/driftwatch/driftwatch/retrain/serve"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

// The targets for bench serve.
const (
	targetServeP99ms    = 5.0
	targetLogOverhead   = 0.20
	targetPythonSpeedup = 5.0
)

type benchServeConfig struct {
	config.Kafka      `yaml:",inline"`
	config.ClickHouse `yaml:",inline"`
	config.Logging    `yaml:",inline"`
	Features          int           `yaml:"features" flag:"features" help:"numeric features of the logistic regression"`
	Rate              float64       `yaml:"rate" flag:"rate" help:"requests/s of the latency phases"`
	Duration          time.Duration `yaml:"duration" flag:"duration" help:"length of each phase"`
	Concurrency       int           `yaml:"concurrency" flag:"concurrency" help:"clients (keep-alive connections) of the saturation phases"`
	Python            string        `yaml:"python" flag:"python" help:"Python with scikit-learn for the reference server (scripts/deps.sh python); empty skips it"`
	Keep              bool          `yaml:"keep" flag:"keep" help:"keep the benchmark database and topics"`
}

func defaultBenchServeConfig() *benchServeConfig {
	return &benchServeConfig{Kafka: config.DefaultKafka(), ClickHouse: config.DefaultClickHouse(), Logging: config.DefaultLogging(),
		Features: 20, Rate: 2000, Duration: 10 * time.Second, Concurrency: 16, Python: ".deps/venv/bin/python"}
}

func (c *benchServeConfig) Validate() error {
	var p problems
	inRange(&p, "features", c.Features, 1, 1000)
	inRange(&p, "concurrency", c.Concurrency, 1, 1000)
	if !(c.Rate > 0) {
		p.add("rate: must be positive, got %v", c.Rate)
	}
	if c.Duration < time.Second {
		p.add("duration: must be at least 1s, got %s", c.Duration)
	}
	return p.join(c.Kafka.Validate(), c.ClickHouse.Validate(), c.Logging.Validate())
}

func serveCommand() command.Command {
	return command.Command{
		Name:    "bench serve",
		Summary: "serve's single-row predictions with logging on and off, against a minimal Python server with scikit-learn",
		Usage: `driftwatch bench serve registers a logistic regression of -features numeric
features (random coefficients) in a fresh database, starts two serve
instances in this process — one logging every prediction to Kafka, one
logging nowhere — and a minimal Python server (http.server and
scikit-learn's LogisticRegression on the exported artifact, -python), then
measures, single-row predictions over keep-alive HTTP from this process:
throughput at saturation (-concurrency clients for -duration) of each, p50
and p99 latency at -rate requests/s (open loop: latency from the scheduled
send, so a stall counts for every request it delays) with logging on and off,
and the logging overhead (1 − saturated throughput on / off). It prints the
figures next to the targets (p99 ≤ 5 ms at 2,000/s, overhead ≤ 20 %,
throughput ≥ 5× Python). The load generator shares the machine's cores.`,
		Config: func() config.Validator { return defaultBenchServeConfig() },
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			return runBenchServe(ctx, c.(*benchServeConfig), env)
		},
	}
}

// discardWriter is the logging-off server's Kafka.
type discardWriter struct{}

func (discardWriter) WriteMessages(context.Context, ...kafka.Message) error { return nil }

func runBenchServe(ctx context.Context, cfg *benchServeConfig, env command.Env) error {
	logf := func(format string, args ...any) { fmt.Fprintf(env.Stderr, "bench serve: "+format+"\n", args...) }
	id := fmt.Sprintf("benchserve%d%04d", time.Now().Unix(), rand.IntN(10000))
	u, err := url.Parse(cfg.ClickHouseURL)
	if err != nil {
		return fmt.Errorf("clickhouse_url: %w", err)
	}
	u.Path = "/" + id
	conn, err := chclient.Open(ctx, chclient.Config{URL: u.String(), User: cfg.ClickHouseUser, Password: cfg.ClickHousePassword.Reveal()}, true)
	if err != nil {
		return err
	}
	defer conn.Close()
	dir, err := os.MkdirTemp("", id+"-")
	if err != nil {
		return err
	}
	kopts, err := kafkaio.FromConfig(cfg.Kafka, "driftwatch-bench", nil)
	if err != nil {
		return err
	}
	kopts.TopicPrefix = id + "."
	defer func() {
		if cfg.Keep {
			logf("kept database %s, topics %s*, %s", id, kopts.TopicPrefix, dir)
			return
		}
		os.RemoveAll(dir)
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = conn.Exec(cctx, "DROP DATABASE IF EXISTS "+chsql.Ident(id)+" SYNC")
		cl, done := kafkaio.NewClient(kopts)
		defer done()
		_, _ = cl.DeleteTopics(cctx, &kafka.DeleteTopicsRequest{Topics: []string{kopts.Topic(schemas.TopicInferences), kopts.Topic(schemas.TopicOutcomes)}})
	}()
	if err := migration.Apply(ctx, conn, migration.DefaultConfig()); err != nil {
		return err
	}
	if err := kafkaio.EnsureTopics(ctx, kopts, kafkaio.Specs(kopts, schemas.TopicFor(schemas.TopicInferences), schemas.TopicFor(schemas.TopicOutcomes))); err != nil {
		return err
	}

	// The model: f0…f<n-1> standardised with random means and stds.
	rng := rand.New(rand.NewPCG(16, 2026))
	m := &model.Model{Format: model.FormatV1, Kind: model.KindLogistic, Target: model.Target{Task: model.Classification, PositiveClass: "1"}, C: 1,
		Preprocessor: model.Preprocessor{Categorical: []model.CategoricalFeature{}}}
	for i := range cfg.Features {
		name := "f" + strconv.Itoa(i)
		m.Preprocessor.Numeric = append(m.Preprocessor.Numeric, model.NumericFeature{Name: name, Mean: rng.NormFloat64(), Std: 0.5 + rng.Float64()})
		m.Columns = append(m.Columns, name)
		m.Coef = append(m.Coef, rng.NormFloat64()/3)
	}
	var buf bytes.Buffer
	if err := m.Save(&buf); err != nil {
		return err
	}
	if m, err = model.Load(&buf); err != nil {
		return err
	}
	art := filepath.Join(dir, "bench", "v1")
	if err := retrain.WriteArtifact(art, m); err != nil {
		return err
	}
	if err := retrain.WriteVersion(ctx, conn, &retrain.Version{ModelID: "bench", Version: "v1", Status: retrain.StatusChampion, Trainer: retrain.TrainerBuiltin,
		ArtifactURI: "file://" + art, CreatedAt: time.Now().UTC()}); err != nil {
		return err
	}

	inf, err := kafkaio.NewWriter(kopts, schemas.TopicInferences)
	if err != nil {
		return err
	}
	defer inf.Close()
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	start := func(w serve.MessageWriter, topic string) (string, *prometheus.Registry, error) {
		reg := prometheus.NewRegistry()
		s, err := serve.New(serve.Options{Settings: serve.DefaultSettings(), Conn: conn, Inferences: w, Outcomes: discardWriter{}, InferencesTopic: topic,
			OutcomesTopic: "none", Registerer: reg})
		if err != nil {
			return "", nil, err
		}
		if err := s.Load(ctx, ""); err != nil {
			return "", nil, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
		wg.Add(2)
		go func() { defer wg.Done(); _ = hs.Serve(ln) }()
		go func() {
			defer wg.Done()
			_ = s.Run(runCtx)
			_ = hs.Close()
		}()
		return "http://" + ln.Addr().String() + "/v1/models/bench/predict", reg, nil
	}
	onURL, onReg, err := start(inf, inf.Topic)
	if err != nil {
		return err
	}
	offURL, _, err := start(discardWriter{}, "discarded")
	if err != nil {
		return err
	}

	bodies := make([][]byte, 256)
	for i := range bodies {
		var b strings.Builder
		b.WriteString(`{"features": {`)
		for j := range cfg.Features {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, `"f%d": %.4f`, j, rng.NormFloat64())
		}
		b.WriteString(`}}`)
		bodies[i] = []byte(b.String())
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0, IdleConnTimeout: time.Minute}, Timeout: 10 * time.Second}

	var pyURL string
	if cfg.Python != "" {
		modelFile := filepath.Join(dir, "model.json")
		_, raw, err := retrain.ReadArtifact("file://" + art)
		if err != nil {
			return err
		}
		if err := os.WriteFile(modelFile, raw, 0o600); err != nil {
			return err
		}
		script := filepath.Join(dir, "server.py")
		if err := os.WriteFile(script, []byte(pythonServer), 0o600); err != nil {
			return err
		}
		port, err := teststack.Port()
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(runCtx, cfg.Python, script, modelFile, strconv.Itoa(port))
		cmd.Stdout, cmd.Stderr = env.Stderr, env.Stderr
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start the Python reference server (%s; scripts/deps.sh python makes .deps/venv): %w", cfg.Python, err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		pyURL = fmt.Sprintf("http://127.0.0.1:%d/v1/models/bench/predict", port)
		deadline := time.Now().Add(60 * time.Second)
		for {
			if code, err := postOnce(client, pyURL, bodies[0]); err == nil && code == 200 {
				break
			}
			if time.Now().After(deadline) {
				return errors.New("the Python reference server did not answer within 60 s")
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, u := range []string{onURL, offURL} {
		if code, err := postOnce(client, u, bodies[0]); err != nil || code != 200 {
			return fmt.Errorf("warm-up request to %s: %d %v", u, code, err)
		}
	}

	logf("saturation, logging on (%d clients, %s)", cfg.Concurrency, cfg.Duration)
	satOn := saturate(ctx, client, onURL, bodies, cfg.Concurrency, cfg.Duration)
	logf("saturation, logging off")
	satOff := saturate(ctx, client, offURL, bodies, cfg.Concurrency, cfg.Duration)
	logf("%.0f requests/s, logging on", cfg.Rate)
	latOn := fixedRate(ctx, client, onURL, bodies, cfg.Rate, cfg.Duration)
	logf("%.0f requests/s, logging off", cfg.Rate)
	latOff := fixedRate(ctx, client, offURL, bodies, cfg.Rate, cfg.Duration)
	var satPy satResult
	if pyURL != "" {
		logf("saturation, Python reference")
		satPy = saturate(ctx, client, pyURL, bodies, cfg.Concurrency, cfg.Duration)
	}
	// Let the log drain, then read what it wrote and dropped.
	time.Sleep(time.Second)
	written, dropped := logCounts(onReg)

	w := env.Stdout
	fmt.Fprintf(w, "bench serve: %d-feature logistic regression, single-row POST /v1/models/bench/predict over keep-alive HTTP from this process\n", cfg.Features)
	fmt.Fprintf(w, "%-40s %12s %10s %10s %8s %14s\n", "phase", "requests/s", "p50 ms", "p99 ms", "errors", "CPU µs/req")
	row := func(name string, r satResult) {
		cpu := "-"
		if r.cpuUS > 0 {
			cpu = fmt.Sprintf("%.1f", r.cpuUS)
		}
		fmt.Fprintf(w, "%-40s %12.0f %10.3f %10.3f %8d %14s\n", name, r.rps, r.p50, r.p99, r.errors, cpu)
	}
	row("saturation, logging on", satOn)
	row("saturation, logging off", satOff)
	row(fmt.Sprintf("%.0f/s, logging on", cfg.Rate), latOn)
	row(fmt.Sprintf("%.0f/s, logging off", cfg.Rate), latOff)
	if pyURL != "" {
		satPy.cpuUS = 0 // the Python server is another process
		row("saturation, Python (http.server+sklearn)", satPy)
	}
	fmt.Fprintf(w, "logging's CPU per request (server and client in this process): %.1f µs on, %.1f µs off (+%.1f %%)\n",
		satOn.cpuUS, satOff.cpuUS, 100*(satOn.cpuUS/satOff.cpuUS-1))
	overhead := 1 - satOn.rps/satOff.rps
	fmt.Fprintf(w, "inference events written to Kafka %d, dropped %d\n", written, dropped)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(w, "p99 at %.0f/s with logging: %.3f ms (target ≤ %.0f ms: %s)\n", cfg.Rate, latOn.p99, targetServeP99ms, verdict(latOn.p99 <= targetServeP99ms))
	fmt.Fprintf(w, "logging overhead (saturated throughput): %.1f %% (target ≤ %.0f %%: %s); p50 at %.0f/s %.3f ms on vs %.3f ms off\n",
		100*overhead, 100*targetLogOverhead, verdict(overhead <= targetLogOverhead), cfg.Rate, latOn.p50, latOff.p50)
	if pyURL != "" && satPy.rps > 0 {
		ratio := satOn.rps / satPy.rps
		fmt.Fprintf(w, "throughput vs the Python reference: %.1f× (target ≥ %.0f×: %s)\n", ratio, targetPythonSpeedup, verdict(ratio >= targetPythonSpeedup))
	}
	return nil
}

func postOnce(c *http.Client, u string, body []byte) (int, error) {
	resp, err := c.Post(u, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

type satResult struct {
	rps, p50, p99 float64
	errors        int64
	// cpuUS is this process's CPU (server and load generator) per
	// answered request, in µs: unlike the rates, it hardly moves with
	// what else runs on the machine.
	cpuUS float64
}

func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func percentiles(lat []time.Duration) (p50, p99 float64) {
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	at := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / 1e6
	}
	return at(0.5), at(0.99)
}

// saturate runs conc closed-loop clients for d.
func saturate(ctx context.Context, c *http.Client, u string, bodies [][]byte, conc int, d time.Duration) satResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		all  []time.Duration
		errs atomic.Int64
	)
	began, cpu0 := time.Now(), processCPU()
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			for n := i; ctx.Err() == nil; n++ {
				t0 := time.Now()
				code, err := postOnce(c, u, bodies[n%len(bodies)])
				if err != nil || code != 200 {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el, cpu := time.Since(began).Seconds(), processCPU()-cpu0
	p50, p99 := percentiles(all)
	return satResult{rps: float64(len(all)) / el, p50: p50, p99: p99, errors: errs.Load(), cpuUS: 1e6 * cpu / float64(max(1, len(all)))}
}

// fixedRate sends rate requests/s for d (open loop) from a pool of
// workers; a request's latency runs from its scheduled send.
func fixedRate(ctx context.Context, c *http.Client, u string, bodies [][]byte, rate float64, d time.Duration) satResult {
	n := int(rate * d.Seconds())
	sched := make(chan time.Time, n)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		all  []time.Duration
		errs atomic.Int64
	)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			k := w
			for at := range sched {
				code, err := postOnce(c, u, bodies[k%len(bodies)])
				k++
				if err != nil || code != 200 {
					errs.Add(1)
					continue
				}
				lat = append(lat, time.Since(at))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	began := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := range n {
		at := began.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		if ctx.Err() != nil {
			break
		}
		sched <- at
	}
	close(sched)
	wg.Wait()
	el := time.Since(began).Seconds()
	p50, p99 := percentiles(all)
	return satResult{rps: float64(len(all)) / el, p50: p50, p99: p99, errors: errs.Load()}
}

// logCounts reads driftwatch_serve_log_events_total's written and
// dropped inference events from reg.
func logCounts(reg *prometheus.Registry) (written, dropped int64) {
	mfs, err := reg.Gather()
	if err != nil {
		return -1, -1
	}
	for _, mf := range mfs {
		if mf.GetName() != "driftwatch_serve_log_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "outcome" {
					continue
				}
				switch l.GetValue() {
				case "written":
					written += int64(m.GetCounter().GetValue())
				case "dropped":
					dropped += int64(m.GetCounter().GetValue())
				}
			}
		}
	}
	return written, dropped
}

// pythonServer is the reference a user might write: the standard
// library's threading HTTP server and scikit-learn's LogisticRegression
// set from the exported artifact (docs/serve.md), no logging.
const pythonServer = `import json, sys, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import numpy as np
from sklearn.linear_model import LogisticRegression

m = json.load(open(sys.argv[1]))
assert m["format"] == "driftwatch.linear-model.v1"
num = m["preprocessor"]["numeric"]
names = [f["name"] for f in num]
mean = np.array([f["mean"] for f in num])
std = np.array([f["std"] for f in num])
clf = LogisticRegression()
clf.coef_ = np.array([m["coef"]])
clf.intercept_ = np.array([m["intercept"]])
clf.classes_ = np.array([0, 1])

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        f = body["features"]
        x = np.array([[f.get(n, np.nan) if f.get(n) is not None else np.nan for n in names]], dtype=float)
        x = np.nan_to_num((x - mean) / std)
        score = float(clf.predict_proba(x)[0, 1])
        out = json.dumps({"predictions": [{"prediction_id": str(uuid.uuid4()), "model_version": "v1", "score": score,
                                           "label": m["target"]["positive_class"] if score >= 0.5 else "0"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()
`
