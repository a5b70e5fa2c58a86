package e2e

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/internal/teststack"
)

// secretPassword is the known password of TestNoSecretPrintedAnywhere. Its
// '/' and '+' are escaped differently in a URL's userinfo, its query and
// its path, so the search looks for its two halves, which no escaping
// changes: either one anywhere is a leak.
const secretPassword = "Pw/7c1f0d+9e2ab4route"

var secretParts = []string{"7c1f0d", "9e2ab4route"}

// TestNoSecretPrintedAnywhere gives driftwatch a known ClickHouse password
// through every route it takes one — inside clickhouse_url's userinfo, as
// clickhouse_url's ?password=, in DRIFTWATCH_CLICKHOUSE_PASSWORD, in a
// -config file and as -clickhouse-password — and for each runs every
// service (ingest, monitor, trainer: -check-config, then started until
// ready, with a failing start against a closed port too) and driftwatch
// commands (-check-config, migrate, models, a configuration error, a
// failing models against a closed port), once with load (gen) and a
// manual retrain run through the trainer. The private ClickHouse requires
// the password, so every route is proved to deliver it. It then searches every output
// and log, every /metrics, /healthz and /readyz page, every file in the
// trainer's data directory and every table of every database of the
// private ClickHouse (SELECT *, as TSV) for the password: none may hold
// it. The embedded ClickHouse does not check passwords, so passing one
// costs nothing.
func TestNoSecretPrintedAnywhere(t *testing.T) {
	// The children see only the DRIFTWATCH_* settings each step gives
	// (teststack.Start and testenv.ChildEnv drop the rest too); the
	// tests' own DRIFTWATCH_TEST_* stay, for testenv.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "DRIFTWATCH_") && !strings.HasPrefix(k, "DRIFTWATCH_TEST_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	kfk := teststack.StartKafka(t)
	// The private clickhouse-embedded requires the password (its
	// CLICKHOUSE_PASSWORD), so each route is proved to deliver it; no
	// driftwatch program reads that variable, and it is gone before they
	// start.
	t.Setenv("CLICKHOUSE_PASSWORD", secretPassword)
	ch := teststack.StartClickHouse(t)
	os.Unsetenv("CLICKHOUSE_PASSWORD")
	bins := map[string]string{}
	for _, s := range []string{"ingest", "monitor", "trainer", "driftwatch"} {
		bins[s] = teststack.Build(t, "./services/"+s)
	}
	dir := t.TempDir()
	closed := teststack.FreePort(t) // nothing listens there

	plainURL := ch.URL("driftwatch")
	userinfoURL := func(port int) string {
		return "http://" + url.UserPassword("default", secretPassword).String() + "@127.0.0.1:" + strconv.Itoa(port) + "/driftwatch"
	}
	fileCfg := filepath.Join(dir, "password.yml")
	if err := os.WriteFile(fileCfg, []byte("clickhouse_password: "+strconv.Quote(secretPassword)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	type route struct {
		name string
		env  []string // DRIFTWATCH_CLICKHOUSE_URL and the password
		args []string
		// badEnv points at the closed port, the password the same way.
		badEnv []string
	}
	routes := []route{
		{name: "url userinfo", env: []string{"DRIFTWATCH_CLICKHOUSE_URL=" + userinfoURL(ch.Port)},
			badEnv: []string{"DRIFTWATCH_CLICKHOUSE_URL=" + userinfoURL(closed)}},
		{name: "url query", env: []string{"DRIFTWATCH_CLICKHOUSE_URL=" + plainURL + "?password=" + url.QueryEscape(secretPassword)},
			badEnv: []string{fmt.Sprintf("DRIFTWATCH_CLICKHOUSE_URL=http://127.0.0.1:%d/driftwatch?password=%s", closed, url.QueryEscape(secretPassword))}},
		{name: "variable", env: []string{"DRIFTWATCH_CLICKHOUSE_URL=" + plainURL, "DRIFTWATCH_CLICKHOUSE_PASSWORD=" + secretPassword},
			badEnv: []string{fmt.Sprintf("DRIFTWATCH_CLICKHOUSE_URL=http://127.0.0.1:%d/driftwatch", closed), "DRIFTWATCH_CLICKHOUSE_PASSWORD=" + secretPassword}},
		// JSON logs here, text logs in the other routes.
		{name: "config file", env: []string{"DRIFTWATCH_CLICKHOUSE_URL=" + plainURL, "DRIFTWATCH_LOG_FORMAT=json"}, args: []string{"-config", fileCfg},
			badEnv: []string{fmt.Sprintf("DRIFTWATCH_CLICKHOUSE_URL=http://127.0.0.1:%d/driftwatch", closed)}},
		{name: "flag", env: []string{"DRIFTWATCH_CLICKHOUSE_URL=" + plainURL}, args: []string{"-clickhouse-password", secretPassword},
			badEnv: []string{fmt.Sprintf("DRIFTWATCH_CLICKHOUSE_URL=http://127.0.0.1:%d/driftwatch", closed)}},
	}
	base := []string{"DRIFTWATCH_KAFKA_BROKERS=" + kfk.Brokers()[0], "DRIFTWATCH_TOPIC_PREFIX=secrets.", "DRIFTWATCH_LOG_LEVEL=debug"}

	// texts holds everything searched at the end, by where it came from.
	var mu sync.Mutex
	texts := map[string]string{}
	keep := func(where, text string) {
		mu.Lock()
		defer mu.Unlock()
		texts[where] += text
	}
	// command runs bin to its end and keeps its output.
	command := func(where, bin string, env []string, args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = testenv.ChildEnv(env...)
		out, _ := cmd.CombinedOutput()
		keep(where, string(out))
		return string(out), cmd.ProcessState.ExitCode()
	}
	get := func(where, u string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		keep(where, string(b))
	}

	for i, r := range routes {
		env := append(append([]string(nil), base...), r.env...)
		dataDir := filepath.Join(dir, "trainer-"+strconv.Itoa(i))
		svcEnv := func(s string, addr string) []string {
			e := append(append([]string(nil), env...), "DRIFTWATCH_HTTP_ADDR="+addr)
			if s == "trainer" {
				e = append(e, "DRIFTWATCH_TRAINER_DATA_DIR="+dataDir)
			}
			if s == "ingest" {
				e = append(e, "DRIFTWATCH_INGEST_BATCH_AGE=200ms")
			}
			if s == "monitor" {
				// driftwatch retrain posts its trigger to the monitor's
				// API, open on loopback.
				e = append(e, "DRIFTWATCH_API_AUTH=none")
			}
			return e
		}

		// -check-config: valid, and the password was read (it shows
		// redacted), not printed.
		for _, c := range [][]string{{"ingest"}, {"monitor"}, {"trainer"}, {"driftwatch", "migrate"}, {"driftwatch", "models"}} {
			args := append(append(c[1:], r.args...), "-check-config")
			out, code := command(r.name+": "+strings.Join(c, " ")+" -check-config", bins[c[0]], svcEnv(c[0], "127.0.0.1:0"), args...)
			if code != 0 {
				t.Errorf("%s: %s -check-config exited %d:\n%s", r.name, strings.Join(c, " "), code, out)
			}
			if !strings.Contains(out, "[REDACTED]") && !strings.Contains(out, "clickhouse_password: <redacted>") {
				t.Errorf("%s: %s -check-config shows no redacted password (did the route set one?):\n%s", r.name, strings.Join(c, " "), out)
			}
		}
		// A configuration error: the message must not quote the password.
		if out, code := command(r.name+": driftwatch models (bad log level)", bins["driftwatch"], append(env, "DRIFTWATCH_LOG_LEVEL=loud"),
			append([]string{"models"}, r.args...)...); code != 2 {
			t.Errorf("%s: models with a bad log level exited %d, want 2:\n%s", r.name, code, out)
		}

		// The services, started until ready.
		procs := map[string]*teststack.Process{}
		addrs := map[string]string{}
		for _, s := range []string{"ingest", "monitor", "trainer"} {
			addrs[s] = "127.0.0.1:" + strconv.Itoa(teststack.FreePort(t))
			procs[s] = teststack.Start(t, r.name+" "+s, bins[s], svcEnv(s, addrs[s]), r.args...)
		}
		for _, s := range []string{"ingest", "monitor", "trainer"} {
			teststack.WaitHTTP(t, "http://"+addrs[s]+"/readyz", 120*time.Second, procs[s])
		}

		// Real commands against the running stack.
		if out, code := command(r.name+": driftwatch migrate", bins["driftwatch"], env, append([]string{"migrate"}, r.args...)...); code != 0 {
			t.Errorf("%s: migrate exited %d:\n%s", r.name, code, out)
		}
		if i == 0 {
			// Load through ingest, and a manual run the trainer records
			// (it fails for want of labelled rows, which is a run too).
			if out, code := command(r.name+": driftwatch gen", bins["driftwatch"], base, "gen", "-events", "2000", "-models", "1", "-start", "now"); code != 0 {
				t.Fatalf("gen exited %d:\n%s", code, out)
			}
			if out, code := command(r.name+": driftwatch retrain", bins["driftwatch"], base, "retrain", "-model", "model-0", "-monitor-url", "http://"+addrs["monitor"]); code != 0 {
				t.Fatalf("retrain exited %d:\n%s", code, out)
			}
			waitFor(t, "the manual run in training_runs", 120*time.Second, func() (bool, string) {
				out := chQuery(t, ch.Port, "SELECT count() FROM driftwatch.training_runs FINAL WHERE status IN ('failed', 'succeeded', 'rejected')")
				return strings.TrimSpace(out) != "0", out
			})
		}
		if out, code := command(r.name+": driftwatch models", bins["driftwatch"], env, append([]string{"models"}, r.args...)...); code != 0 {
			t.Errorf("%s: models exited %d:\n%s", r.name, code, out)
		}
		for s, a := range addrs {
			for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
				get(r.name+": "+s+" "+p, "http://"+a+p)
			}
		}
		for s, p := range procs {
			_ = p.Stop(60 * time.Second)
			keep(r.name+": "+s+" log", p.Output())
		}

		// Failures against a closed port: a command's error and a
		// service's retry log.
		bad := append(append([]string(nil), base...), r.badEnv...)
		if out, code := command(r.name+": driftwatch models (closed port)", bins["driftwatch"], bad, append([]string{"models"}, r.args...)...); code != 1 {
			t.Errorf("%s: models against a closed port exited %d, want 1:\n%s", r.name, code, out)
		}
		ing := teststack.Start(t, r.name+" ingest (closed port)", bins["ingest"], append(bad, "DRIFTWATCH_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(teststack.FreePort(t))), r.args...)
		waitFor(t, "ingest to log its failed ClickHouse connection", 60*time.Second, func() (bool, string) {
			return strings.Contains(ing.Output(), "connect to ClickHouse"), ing.Output()
		})
		_ = ing.Stop(30 * time.Second)
		keep(r.name+": ingest (closed port) log", ing.Output())

		// Every file the trainer wrote.
		_ = filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if b, err := os.ReadFile(path); err == nil {
					keep(r.name+": trainer file "+strings.TrimPrefix(path, dataDir), string(b))
				}
			}
			return nil
		})
	}

	// Every table of every database, as text.
	var tables []string
	for _, line := range strings.Split(strings.TrimSpace(chQuery(t, ch.Port, "SELECT database, name FROM system.tables "+
		"WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') FORMAT TSVRaw")), "\n") {
		db, name, _ := strings.Cut(line, "\t")
		tables = append(tables, "`"+db+"`.`"+name+"`")
	}
	if len(tables) < 5 {
		t.Fatalf("only %d tables in ClickHouse: %q", len(tables), tables)
	}
	for _, tbl := range tables {
		keep("table "+tbl, chQuery(t, ch.Port, "SELECT * FROM "+tbl+" FORMAT TSV"))
	}
	if !strings.Contains(texts["table `driftwatch`.`training_runs`"], "model-0") {
		t.Errorf("training_runs has no run of model-0:\n%s", texts["table `driftwatch`.`training_runs`"])
	}

	for where, text := range texts {
		for _, part := range secretParts {
			if i := strings.Index(text, part); i >= 0 {
				t.Errorf("%s holds the password: …%s…", where, text[max(0, i-200):min(len(text), i+100)])
				break
			}
		}
	}
	t.Logf("searched %d outputs, pages, files and tables (%d tables)", len(texts), len(tables))
}

// chQuery runs q on the private ClickHouse over HTTP and returns its
// answer.
func chQuery(t *testing.T, port int, q string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:"+strconv.Itoa(port)+"/", strings.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("default", secretPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s: %s", q, resp.Status, b)
	}
	return string(b)
}
