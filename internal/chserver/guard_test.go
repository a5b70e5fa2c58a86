package chserver

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/driftwatch/driftwatch/internal/testenv"
)

func TestForbiddenSource(t *testing.T) {
	refused := []string{
		"INSERT INTO FUNCTION file('/home/u/.bashrc', 'TSV', 's String') SELECT 'x'",
		"SELECT * FROM file('/etc/passwd', 'LineAsString')",
		"SELECT file('/etc/passwd')",
		"SELECT * FROM `file` ('/etc/passwd')",
		"SELECT * FROM FILE /* c */ ('/etc/passwd')",
		"SELECT * FROM url('http://169.254.169.254/', 'LineAsString')",
		"SELECT * FROM s3Cluster('c', 'https://b/k')",
		"SELECT * FROM remoteSecure('h:9440', system.one)",
		"SELECT * FROM executable('x.sh', 'TSV', 'a String')",
		"SELECT * FROM postgresql('h:5432', 'db', 't', 'u', 'p')",
		"CREATE TABLE t (a String) ENGINE = File(TSV, '/tmp/x')",
		"CREATE TABLE t (a String) ENGINE = URL('http://h/', CSV)",
		"CREATE DATABASE fs ENGINE = Filesystem",
		"CREATE DICTIONARY d (k UInt64, v String) PRIMARY KEY k SOURCE(HTTP(url 'http://h/' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)",
		"SELECT * FROM `/etc/passwd`",
		"SELECT * FROM system.one, `/etc/passwd`",
		"SELECT * FROM system.one JOIN `/etc/passwd` ON 1",
		"SELECT * FROM db.`/etc/passwd`",
		"SELECT * FROM `..\\x`",
		`SELECT * FROM "/etc/passwd"`,
		"SELECT * FROM '/etc/passwd'",
		"SELECT * FROM system.one, 'data.csv'",
		"DESCRIBE '/etc/passwd'",
		"SELECT 1 INTO OUTFILE '/tmp/x'",
		"INSERT INTO t FROM INFILE '/etc/passwd' FORMAT TSV",
		"BACKUP TABLE t TO Disk('backups', 'b.zip')",
		"SELECT * FROM file('/tmp/shared/../../etc/passwd', 'LineAsString')",
		"SELECT * FROM file('/tmp/shared/{..,x}/etc/passwd', 'LineAsString')",
		"SELECT * FROM file('/tmp/sharedx/a.csv')",
		"SELECT * FROM file('/tmp/shared')",
		"SELECT * FROM file(concat('/tmp/shared/', 'a'))",
		"SELECT * FROM file('/tmp/shared/a' || '', 'CSV')",
		"INSERT INTO FUNCTION file('/home/u/.bashrc', 'TSV') SELECT * FROM file('/tmp/shared/a.tsv')",
		"SELECT * FROM t FORMAT Template SETTINGS format_template_resultset = '/etc/passwd'",
		"SELECT * FROM t SETTINGS format_schema = '/etc/x.proto:M' FORMAT Protobuf",
		"CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a SETTINGS disk = disk(type = local, path = '/tmp/d/')",
	}
	for _, q := range refused {
		if why := forbiddenSource(q, []string{"/data/ch", "/tmp/shared"}); why == "" {
			t.Errorf("forbiddenSource(%q) = \"\", want a refusal", q)
		}
	}
	allowed := []string{
		"SELECT count() FROM predictions WHERE model = 'm' AND feature IN ('a', 'b')",
		"SELECT * FROM a, b WHERE a.x = b.x",
		"SELECT concat('/etc/', s) FROM t",
		"CREATE TABLE t (a UInt8, b UInt8 MATERIALIZED (a + 1), url String) ENGINE = ReplacingMergeTree(a) ORDER BY a",
		"INSERT INTO t (a, file) FORMAT JSONEachRow",
		"SELECT * FROM numbers(10)",
		"SELECT `a/b` FROM (SELECT 1 AS `a/b`)",
		"SELECT `we\\`ird\\\\` FROM (SELECT 'v' AS `we\\`ird\\\\`)",
		"SELECT x AS `per/second` FROM t ORDER BY `per/second`",
		"WITH x AS (SELECT 1) SELECT * FROM x",
		"ALTER TABLE t MODIFY TTL ts + INTERVAL 30 DAY",
		"SELECT cutURLParameter(u, 'a') FROM t",
		"SELECT * FROM file('/tmp/shared/run 1/train.parquet', Parquet) AS f LEFT JOIN t ON f.id = t.id",
		"INSERT INTO FUNCTION file('/data/ch/export.parquet', 'Parquet') SELECT * FROM t",
		"SELECT * FROM file('relative/in/data.csv', 'CSV')",
	}
	for _, q := range allowed {
		if why := forbiddenSource(q, []string{"/data/ch", "/tmp/shared"}); why != "" {
			t.Errorf("forbiddenSource(%q) = %q, want none", q, why)
		}
	}
}

// safeSources are the engine's table functions, table engines and
// database engines that stay inside its own tables.
var safeSources = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`numbers numbers_mt zeros zeros_mt generateRandom generateSeries generate_series values
		SQLStandardValues view viewIfPermitted viewExplain merge mergeTreeIndex mergeTreeProjection mergeTreeTextIndex
		mergeTreeAnalyzeIndexes mergeTreeAnalyzeIndexesUUID null input format loop dictionary primes fuzzJSON fuzzQuery
		timeSeriesData timeSeriesSelector timeSeriesMetrics timeSeriesTags timeSeriesSamples
		MergeTree ReplacingMergeTree SummingMergeTree AggregatingMergeTree CollapsingMergeTree VersionedCollapsingMergeTree
		CoalescingMergeTree GraphiteMergeTree Log TinyLog StripeLog Memory Set Join Buffer Null View MaterializedView Merge
		Dictionary GenerateRandom Loop Alias FuzzJSON FuzzQuery TimeSeries WindowView Atomic Ordinary`) {
		safeSources[n] = true
	}
}

// TestForbiddenNamesCoverEngine asks the engine for every table function,
// table engine and database engine it has: each must be known safe or
// refused, so a libchdb upgrade that adds one fails here until it is
// sorted.
func TestForbiddenNamesCoverEngine(t *testing.T) {
	raw := testenv.ClickHouseURL(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	base := url.URL{Scheme: u.Scheme, Host: u.Host, User: u.User}
	for _, table := range []string{"system.table_functions", "system.table_engines", "system.database_engines"} {
		base.RawQuery = url.Values{"query": {"SELECT name FROM " + table}}.Encode()
		res, err := http.Get(base.String())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d %s", table, res.StatusCode, b)
		}
		names := strings.Fields(string(b))
		if len(names) < 5 {
			t.Fatalf("%s lists %d names", table, len(names))
		}
		for _, n := range names {
			switch safe, refused := safeSources[n], forbiddenName(n); {
			case safe && refused:
				t.Errorf("%s: %s is listed safe but refused", table, n)
			case !safe && !refused:
				t.Errorf("%s: %s is neither known safe nor refused: add it to forbiddenNames or to safeSources", table, n)
			}
		}
	}
}
