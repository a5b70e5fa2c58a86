// Package teststack starts real components as separate processes for tests
// that must stop, kill or restart them — a private Kafka broker (through
// scripts/kafka.sh), a private clickhouse-embedded, a driftwatch service
// binary — so that such a test never disturbs the shared stack other
// packages' tests use. Each helper registers its cleanup with t.Cleanup.
//
// Missing prerequisites (the Kafka jars, libchdb) are reported through
// testenv.Unavailable: a skip outside CI, a failure under CI=true.
package teststack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/testenv"
)

// RepoRoot returns the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Ports handed out by FreePort in this process.
var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that is free now and that this
// process has not handed out before (a service binds it later, so two
// calls must not return the same one). It is drawn at random from
// 20000–27999, below Linux's ephemeral range (32768–60999 by default): a
// port the kernel picked for a ":0" listener would be free again once
// released, and any outgoing connection, or a ":0" listener of a test
// running beside this one, could take it before the service does.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := Port()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Port is FreePort for code outside a test.
func Port() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for range 1000 {
		p := 20000 + rand.IntN(8000)
		if portsUsed[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		portsUsed[p] = true
		return p, nil
	}
	return 0, errors.New("no free TCP port in 20000–27999 after 1000 tries")
}

var buildMu sync.Mutex

// Build compiles the main package at pkg (for example
// "./services/ingest") into a temporary directory and returns the binary.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = RepoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// Kafka is a private single-node broker.
type Kafka struct {
	Port, ControllerPort int
	// SASLSSLPort is the SASL_SSL listener's port; 0 when the broker has
	// none (StartKafka).
	SASLSSLPort int
	// SASLUsername and SASLPassword are the one user the SASL_SSL listener
	// knows, for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
	SASLUsername, SASLPassword string
	DataDir                    string
	root                       string
}

// Brokers returns the bootstrap address.
func (k *Kafka) Brokers() []string { return []string{"127.0.0.1:" + strconv.Itoa(k.Port)} }

// SASLSSLBrokers returns the bootstrap address of the SASL_SSL listener.
func (k *Kafka) SASLSSLBrokers() []string {
	return []string{"127.0.0.1:" + strconv.Itoa(k.SASLSSLPort)}
}

// TLSFile returns the path of one of the files scripts/kafka.sh made for
// the SASL_SSL listener: "ca.pem" (the CA that signed the broker's
// certificate), "client.pem" and "client.key" (a client certificate the
// broker accepts).
func (k *Kafka) TLSFile(name string) string { return filepath.Join(k.DataDir, "tls", name) }

// StartKafkaSASLSSL starts a broker like StartKafka that also has a
// SASL_SSL listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) with certificates
// made by openssl at start, for the user SASLUsername with password
// SASLPassword.
func StartKafkaSASLSSL(t testing.TB) *Kafka {
	t.Helper()
	testenv.Private(t, "Kafka broker")
	root := RepoRoot(t)
	if m, _ := filepath.Glob(filepath.Join(root, ".deps/kafka/libs/kafka_2.13-*.jar")); len(m) == 0 {
		testenv.Unavailable(t, "the Kafka jars are not in .deps/kafka/libs (run `make deps`)")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		testenv.Unavailable(t, "openssl is not installed (run `make deps`); it makes the SASL_SSL listener's certificates")
	}
	k := &Kafka{Port: FreePort(t), ControllerPort: FreePort(t), SASLSSLPort: FreePort(t),
		SASLUsername: "driftwatch-test", SASLPassword: fmt.Sprintf("pw-%08x", rand.Uint32()),
		DataDir: filepath.Join(t.TempDir(), "kafka"), root: root}
	t.Cleanup(func() { k.run(t, "stop") })
	k.Start(t)
	return k
}

// StartKafka starts a broker on free ports with its own data directory.
func StartKafka(t testing.TB) *Kafka {
	t.Helper()
	testenv.Private(t, "Kafka broker")
	root := RepoRoot(t)
	if m, _ := filepath.Glob(filepath.Join(root, ".deps/kafka/libs/kafka_2.13-*.jar")); len(m) == 0 {
		testenv.Unavailable(t, "the Kafka jars are not in .deps/kafka/libs (run `make deps`)")
	}
	k := &Kafka{Port: FreePort(t), ControllerPort: FreePort(t), DataDir: filepath.Join(t.TempDir(), "kafka"), root: root}
	t.Cleanup(func() { k.run(t, "stop") })
	k.Start(t)
	return k
}

// Start starts the broker again after Stop (same ports, same data).
func (k *Kafka) Start(t testing.TB) { t.Helper(); k.run(t, "start") }

// Stop stops the broker gracefully.
func (k *Kafka) Stop(t testing.TB) { t.Helper(); k.run(t, "stop") }

func (k *Kafka) run(t testing.TB, verb string) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(k.root, "scripts/kafka.sh"), verb)
	// KAFKA_BROKERS=1 whatever the shell says (`KAFKA_BROKERS=3 make test`
	// exports 3 for the shared stack): this is a one-node broker.
	cmd.Env = append(os.Environ(), "KAFKA_BROKERS=1", "KAFKA_PORTS=", "KAFKA_CONTROLLER_PORTS=",
		"KAFKA_PORT="+strconv.Itoa(k.Port), "KAFKA_CONTROLLER_PORT="+strconv.Itoa(k.ControllerPort), "KAFKA_DATA_DIR="+k.DataDir)
	if k.SASLSSLPort != 0 {
		cmd.Env = append(cmd.Env, "KAFKA_SASL_SSL_PORT="+strconv.Itoa(k.SASLSSLPort), "KAFKA_SASL_USERNAME="+k.SASLUsername, "KAFKA_SASL_PASSWORD="+k.SASLPassword)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kafka.sh %s: %v\n%s", verb, err, b)
	}
}

// KafkaCluster is a private three-node KRaft cluster (scripts/kafka.sh
// with KAFKA_BROKERS=3): every node broker and controller, topics with
// replication factor 3 and min.insync.replicas 2 by default.
type KafkaCluster struct {
	Ports, ControllerPorts []int
	DataDir                string
	root                   string
}

// StartKafkaCluster starts three nodes on free ports with their own data
// directories and stops them at cleanup.
func StartKafkaCluster(t testing.TB) *KafkaCluster {
	t.Helper()
	testenv.Private(t, "Kafka cluster")
	root := RepoRoot(t)
	if m, _ := filepath.Glob(filepath.Join(root, ".deps/kafka/libs/kafka_2.13-*.jar")); len(m) == 0 {
		testenv.Unavailable(t, "the Kafka jars are not in .deps/kafka/libs (run `make deps`)")
	}
	k := &KafkaCluster{DataDir: filepath.Join(t.TempDir(), "kafka"), root: root}
	for range 3 {
		k.Ports = append(k.Ports, FreePort(t))
		k.ControllerPorts = append(k.ControllerPorts, FreePort(t))
	}
	t.Cleanup(func() { k.run(t, "stop") })
	k.run(t, "start")
	return k
}

// Brokers returns the bootstrap addresses of the three nodes.
func (k *KafkaCluster) Brokers() []string {
	out := make([]string, len(k.Ports))
	for i, p := range k.Ports {
		out[i] = "127.0.0.1:" + strconv.Itoa(p)
	}
	return out
}

// NodeID returns the node id (1-3) of the broker whose client port is
// port, as the cluster's metadata gives it, or 0 when it is none of them.
func (k *KafkaCluster) NodeID(port int) int {
	for i, p := range k.Ports {
		if p == port {
			return i + 1
		}
	}
	return 0
}

// Kill sends SIGKILL to node id (1-3) and waits until it is gone: no
// controlled shutdown, no flush, as when a machine dies.
func (k *KafkaCluster) Kill(t testing.TB, id int) {
	t.Helper()
	pidFile := filepath.Join(k.DataDir, "node-"+strconv.Itoa(id), "kafka.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("kill Kafka node %d: %v", id, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("kill Kafka node %d: pid file %s: %v", id, pidFile, err)
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !bytes.Contains(cmdline, []byte("kafka.Kafka")) {
		t.Fatalf("kill Kafka node %d: pid %d is not a running broker (%v)", id, pid, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill Kafka node %d (pid %d): %v", id, pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		// The broker was started by setsid from kafka.sh: init reaps it.
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && bytes.Contains(st, []byte(") Z ")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Kafka node %d (pid %d) still runs 30 s after SIGKILL", id, pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (k *KafkaCluster) run(t testing.TB, verb string) {
	t.Helper()
	join := func(ps []int) string {
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = strconv.Itoa(p)
		}
		return strings.Join(s, ",")
	}
	cmd := exec.Command("bash", filepath.Join(k.root, "scripts/kafka.sh"), verb)
	cmd.Env = append(os.Environ(), "KAFKA_BROKERS=3", "KAFKA_PORTS="+join(k.Ports),
		"KAFKA_CONTROLLER_PORTS="+join(k.ControllerPorts), "KAFKA_DATA_DIR="+k.DataDir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kafka.sh %s (three nodes): %v\n%s", verb, err, b)
	}
}

// Process is a started binary.
type Process struct {
	Name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// Start runs bin with args and env and stops it with SIGTERM at cleanup.
// Its output is kept for Output. The process gets the test's environment
// without its DRIFTWATCH_* variables (testenv.ChildEnv), then env: it sees
// only the driftwatch settings the test gives, never a production one the
// shell holds.
func Start(t testing.TB, name, bin string, env []string, args ...string) *Process {
	t.Helper()
	testenv.Private(t, name+" process")
	p, err := launch(name, bin, testenv.ChildEnv(env...), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop(30 * time.Second)
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, tail(p.out.String(), 4000))
		}
	})
	return p
}

// Launch is Start for code outside a test: the caller stops the process
// (Stop).
func Launch(name, bin string, env []string, args ...string) (*Process, error) {
	return launch(name, bin, append(os.Environ(), env...), args...)
}

func launch(name, bin string, env []string, args ...string) (*Process, error) {
	p := &Process{Name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

// Stop sends SIGTERM and waits up to timeout for the process to exit,
// then kills it. It returns the process's error, or that it did not stop
// in time.
func (p *Process) Stop(timeout time.Duration) error {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s", p.Name, timeout)
	}
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Err returns how the process ended (nil while it runs or after a clean
// exit).
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) { _ = p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL and waits for the process to end.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Wait waits up to d for the process to exit and returns its error.
func (p *Process) Wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("%s did not exit within %s", p.Name, d)
		return nil
	}
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output returns what the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// ClickHouse is a private clickhouse-embedded server.
type ClickHouse struct {
	Port    int
	DataDir string
	bin     string
	lib     string
	proc    *Process
}

// URL returns the HTTP URL of database db.
func (c *ClickHouse) URL(db string) string { return fmt.Sprintf("http://127.0.0.1:%d/%s", c.Port, db) }

// StartClickHouse builds and starts clickhouse-embedded on a free port.
func StartClickHouse(t testing.TB) *ClickHouse {
	t.Helper()
	testenv.Private(t, "ClickHouse server")
	lib := testenv.Env(t, "CHDB_LIB_PATH", "path of libchdb.so (run `make deps`)")
	c := &ClickHouse{Port: FreePort(t), DataDir: filepath.Join(t.TempDir(), "clickhouse"), bin: Build(t, "./services/clickhouse-embedded"), lib: lib}
	c.Start(t)
	return c
}

// Start starts the server (again, after Stop) and waits for /ping.
func (c *ClickHouse) Start(t testing.TB) {
	t.Helper()
	c.proc = Start(t, "clickhouse-embedded", c.bin, nil, "-http", "127.0.0.1:"+strconv.Itoa(c.Port), "-path", c.DataDir, "-lib", c.lib)
	WaitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/ping", c.Port), 60*time.Second, c.proc)
}

// Stop stops the server with SIGTERM and waits for it to exit.
func (c *ClickHouse) Stop(t testing.TB) {
	t.Helper()
	c.proc.Signal(syscall.SIGTERM)
	_ = c.proc.Wait(t, 60*time.Second)
}

// WaitHTTP polls url until it answers 200, failing after d or when proc
// (if not nil) exits first.
func WaitHTTP(t testing.TB, url string, d time.Duration, proc *Process) {
	t.Helper()
	if err := PollHTTP(context.Background(), url, d, proc); err != nil {
		t.Fatal(err)
	}
}

// PollHTTP is WaitHTTP for code outside a test: it returns an error (with
// the tail of proc's output) instead of failing a test.
func PollHTTP(ctx context.Context, url string, d time.Duration, proc *Process) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if OK(ctx, url) {
			return nil
		}
		if proc != nil && proc.Exited() {
			return fmt.Errorf("%s exited (%v) while waiting for %s:\n%s", proc.Name, proc.Err(), url, tail(proc.Output(), 4000))
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	msg := ""
	if proc != nil {
		msg = tail(proc.Output(), 4000)
	}
	return fmt.Errorf("%s did not answer 200 within %s\n%s", url, d, msg)
}

// OK reports whether a GET of url answers 200 within 2 s.
func OK(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 4<<20 {
		// Keep the last MiB of a long-running process's output.
		last := append([]byte(nil), s.b.Bytes()[s.b.Len()-1<<20:]...)
		s.b.Reset()
		s.b.Write(last)
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// MetricSum returns the sum of every series of the metric family name
// that the server at addr (host:port) exports on /metrics: 0 when it
// exports none. Fault tests read a process's counters with it, before a
// kill and after a restart.
func MetricSum(ctx context.Context, addr, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("read %s from %s: %w", name, addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("read %s from %s: status %d, %v", name, addr, resp.StatusCode, err)
	}
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("read %s from %s: %q: %w", name, addr, line, err)
		}
		sum += v
	}
	return sum, nil
}

// Committed returns the sum over topic's partitions of the offsets group
// committed (a partition without a committed offset counts 0): how many of
// the topic's messages the group has finished with.
func Committed(ctx context.Context, brokers []string, group, topic string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(brokers...)}
	res, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		return 0, fmt.Errorf("committed offsets of group %s: %w", group, err)
	}
	var n int64
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return 0, fmt.Errorf("committed offset of group %s in %s/%d: %w", group, topic, p.Partition, p.Error)
		}
		n += max(p.CommittedOffset, 0)
	}
	return n, nil
}

// EndOffsets returns the sum over topic's partitions of their end
// offsets: how many messages were ever written to it.
func EndOffsets(ctx context.Context, brokers []string, topic string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(brokers...)}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, mt := range md.Topics {
		if mt.Error != nil {
			return 0, fmt.Errorf("metadata of %s: %w", topic, mt.Error)
		}
		for _, p := range mt.Partitions {
			req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p.ID))
		}
	}
	res, err := c.ListOffsets(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	var n int64
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return 0, fmt.Errorf("end offset of %s/%d: %w", topic, p.Partition, p.Error)
		}
		n += p.LastOffset
	}
	return n, nil
}
