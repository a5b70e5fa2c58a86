package chserver

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
)

// ClickHouse error codes of the guards below.
const (
	codeReadonly     = 164 // READONLY
	codeAccessDenied = 497 // ACCESS_DENIED
)

// The guards make the server safe to leave running on a developer's
// machine, where any web page the browser visits can send it requests:
//
//   - a request whose Origin header is not on Options.AllowedOrigins is
//     refused (a browser sends Origin with every cross-site POST and with
//     fetch/XHR GETs; clickhouse-go, curl and the services send none);
//   - a GET runs only statements that read, as ClickHouse's HTTP interface
//     sets readonly for GET (a page can make the browser send a GET, an
//     <img src> for instance, without any Origin);
//   - statements that reach the file system or the network outside the
//     engine's tables are refused, whatever the method (see
//     forbiddenSource).
//
// The last is done here, by scanning the statement, because libchdb runs
// the engine as clickhouse-local: there user_files_path does not confine
// file() (file('/etc/hostname') reads the file), the default database
// overlays the file system (SELECT * FROM `/etc/hostname` reads it too, and
// a bare unknown table name is a file in the working directory), INTO
// OUTFILE writes wherever it is told, and access management (CREATE USER,
// REVOKE, EXECUTE AS) is disabled, so the engine cannot be told to refuse.

// originAllowed reports whether r carries no Origin or one on the list.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range s.opts.AllowedOrigins {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// readOnly reports whether st only reads: what a GET may run.
func readOnly(st statement) bool {
	return st.kind == kindSelect || st.kind == kindSessionOnly
}

// forbiddenNames are table functions, table and database engines and
// dictionary sources that read or write files outside the data directory,
// reach other hosts or run programs; forbiddenPrefixes cover their
// families (s3Cluster, icebergS3, azureBlobStorageCluster, …). A name is
// refused when it is followed by "(" (a call, an engine with arguments)
// or follows ENGINE = (an engine without them), in any letter case and
// quoted or not.
var forbiddenNames = map[string]bool{
	"file": true, "filecluster": true, "url": true, "urlcluster": true, "gcs": true, "oss": true, "cosn": true,
	"mongodb": true, "redis": true, "sqlite": true, "odbc": true, "jdbc": true, "hive": true, "kafka": true,
	"rabbitmq": true, "nats": true, "filesystem": true, "disk": true, "distributed": true, "embeddedrocksdb": true,
	"keepermap": true, "http": true, "https": true, "clickhouse": true, "ytsaurus": true, "python": true,
	"backup": true, "materializedmysql": true, "materializedpostgresql": true,
	"arrowstream": true, "eval": true, "filelog": true, "queryrunner": true, "datalakecatalog": true,
}

var forbiddenPrefixes = []string{
	"s3", "azure", "iceberg", "deltalake", "hudi", "paimon", "hdfs", "remote", "cluster", "executable",
	"mysql", "postgres", "arrowflight", "objectstorage", "prometheus", "replicated",
}

func forbiddenName(name string) bool {
	n := strings.ToLower(name)
	if forbiddenNames[n] {
		return true
	}
	for _, p := range forbiddenPrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// fileSettings are settings whose value is a file the engine reads
// (format schemas and templates); they are refused in the URL and in a
// SETTINGS clause alike.
var fileSettings = map[string]bool{
	"format_schema": true, "format_template_row": true, "format_template_resultset": true,
}

// tablePosition are the keywords after which a quoted name is a table
// reference, which the engine resolves to a file when no table has it.
var tablePosition = map[string]bool{"FROM": true, "JOIN": true, "TABLE": true, "DESCRIBE": true, "DESC": true, "INTO": true}

// forbiddenSource returns why text reaches outside the engine's tables,
// or "" when it does not. text is a statement without INSERT data. The
// one exception is file() with a literal path inside one of fileDirs
// (absolute, clean), as ClickHouse's user_files_path would allow.
func forbiddenSource(text string, fileDirs []string) string {
	lx := &lexer{s: text}
	var toks []token
	for {
		t, ok := lx.next()
		if !ok {
			break
		}
		toks = append(toks, t)
	}
	word := func(i int) string {
		if i < 0 || i >= len(toks) || !toks[i].word {
			return ""
		}
		return strings.ToUpper(lx.text(toks[i]))
	}
	// clause[d] is the last clause keyword seen at parenthesis depth d,
	// so that "FROM a, 'path'" is known to be a table list.
	clause := map[int]string{}
	depth := 0
	for i, t := range toks {
		w := lx.text(t)
		switch {
		case w == "(":
			depth++
			delete(clause, depth)
			continue
		case w == ")":
			depth--
			continue
		}
		if i == 0 && t.word {
			switch strings.ToUpper(w) {
			case "BACKUP", "RESTORE":
				return strings.ToUpper(w) + " writes or reads files outside the data directory"
			}
		}
		name := w
		if t.quoted && (w[0] == '`' || w[0] == '"') {
			name = unquote(w)
			// Only where a table goes: a column or an alias may hold a
			// slash ("SELECT `a/b` FROM t"); a table name that does is
			// read as a file by clickhouse-local.
			inTable := i > 0 && (tablePosition[word(i-1)] || lx.text(toks[i-1]) == "." ||
				lx.text(toks[i-1]) == "," && (clause[depth] == "FROM" || clause[depth] == "JOIN"))
			if inTable && strings.ContainsAny(name, `/\`) {
				return "the identifier " + w + " in place of a table names a path, which the engine would read as a file"
			}
		}
		if (t.word || t.quoted && w[0] != '\'') && i+1 < len(toks) && lx.text(toks[i+1]) == "(" && forbiddenName(name) {
			if strings.EqualFold(name, "file") && i+3 < len(toks) && toks[i+2].quoted && lx.text(toks[i+2])[0] == '\'' &&
				(lx.text(toks[i+3]) == "," || lx.text(toks[i+3]) == ")") && fileAllowed(lx.text(toks[i+2]), fileDirs) {
				continue
			}
			return name + "() reaches the file system, the network or a program"
		}
		if (t.word || t.quoted && w[0] != '\'') && word(i-1) == "" && i >= 2 && lx.text(toks[i-1]) == "=" && word(i-2) == "ENGINE" && forbiddenName(name) {
			return "ENGINE = " + name + " reaches the file system, the network or a program"
		}
		if t.word && fileSettings[strings.ToLower(w)] && i+1 < len(toks) && lx.text(toks[i+1]) == "=" {
			return "the setting " + w + " names a file, which the engine would read"
		}
		kw := word(i)
		switch {
		case kw == "OUTFILE" && word(i-1) == "INTO", kw == "INFILE" && word(i-1) == "FROM":
			return word(i-1) + " " + kw + " writes or reads a file of the server"
		case kw == "FROM", kw == "JOIN", kw == "WHERE", kw == "SELECT", kw == "GROUP", kw == "ORDER",
			kw == "HAVING", kw == "LIMIT", kw == "SETTINGS", kw == "FORMAT", kw == "ON", kw == "USING", kw == "PREWHERE":
			clause[depth] = kw
		}
		if t.quoted && w[0] == '\'' && i > 0 {
			prev := lx.text(toks[i-1])
			if tablePosition[word(i-1)] || prev == "," && clause[depth] == "FROM" {
				return "the string " + w + " in place of a table names a file, which the engine would read"
			}
		}
	}
	return ""
}

func unquote(q string) string {
	if len(q) < 2 {
		return q
	}
	return strings.NewReplacer(`\\`, `\`, "``", "`", `""`, `"`).Replace(q[1 : len(q)-1])
}

// loopback reports whether the listen address addr accepts connections
// from this machine only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// fileAllowed reports whether the string literal lit names a path inside
// one of dirs. A relative path is relative to the first, the data
// directory (the engine's working directory). ".." anywhere (a segment, or
// one a glob such as {..,x} expands to) and backslash escapes are refused
// rather than interpreted.
func fileAllowed(lit string, dirs []string) bool {
	if len(lit) < 2 || len(dirs) == 0 {
		return false
	}
	p := strings.ReplaceAll(lit[1:len(lit)-1], "''", "'")
	if p == "" || strings.Contains(p, "..") || strings.ContainsAny(p, "\\\x00") {
		return false
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dirs[0], p)
	}
	p = filepath.Clean(p)
	for _, d := range dirs {
		if d != "" && strings.HasPrefix(p, filepath.Clean(d)+string(filepath.Separator)) {
			return true
		}
	}
	return false
}
