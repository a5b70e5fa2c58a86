package chserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/internal/teststack"
)

// pki is a CA with a server and a client certificate, made with openssl.
type pki struct{ dir, ca, serverCert, serverKey, clientCert, clientKey string }

func openssl(t *testing.T, dir string, args ...string) {
	t.Helper()
	c := exec.Command("openssl", args...)
	c.Dir = dir
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

// newPKI makes a CA named name and, signed by it, a server certificate for
// 127.0.0.1 and localhost and a client certificate.
func newPKI(t *testing.T, name string) pki {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	openssl(t, dir, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
		"-subj", "/CN="+name, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	for _, leaf := range []struct{ name, ext string }{
		{"server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"},
		{"client", "extendedKeyUsage=clientAuth\n"},
	} {
		if err := os.WriteFile(filepath.Join(dir, leaf.name+".ext"), []byte(leaf.ext), 0o600); err != nil {
			t.Fatal(err)
		}
		openssl(t, dir, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", leaf.name+".key", "-out", leaf.name+".csr", "-subj", "/CN=driftwatch-"+leaf.name)
		openssl(t, dir, "x509", "-req", "-in", leaf.name+".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
			"-out", leaf.name+".pem", "-days", "2", "-extfile", leaf.name+".ext")
	}
	p := func(f string) string { return filepath.Join(dir, f) }
	return pki{dir: dir, ca: p("ca.pem"), serverCert: p("server.pem"), serverKey: p("server.key"), clientCert: p("client.pem"), clientKey: p("client.key")}
}

// TestHTTPSEndToEnd serves HTTPS with client certificates required, runs
// `driftwatch migrate` and chclient over https:// with the CA file and the
// client certificate, and checks that an untrusted CA and a missing client
// certificate fail with errors that say so.
func TestHTTPSEndToEnd(t *testing.T) {
	lib := testenv.Env(t, "CHDB_LIB_PATH", "path of libchdb.so (run `make deps`)")
	bin := buildServer(t)
	cli := teststack.Build(t, "./services/driftwatch")
	good, other := newPKI(t, "driftwatch-test-ca"), newPKI(t, "untrusted-ca")
	addr := freeAddr(t)
	cmd := exec.Command(bin, "-http", addr, "-path", t.TempDir(), "-lib", lib,
		"-tls-cert", good.serverCert, "-tls-key", good.serverKey, "-tls-client-ca", good.ca)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(good.ca)
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(good.clientCert, good.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := hc.Get("https://" + addr + "/ping")
		if err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HTTPS /ping within 60s: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if res, err := http.Get("http://" + addr + "/ping"); err == nil {
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP answered 200 on the HTTPS port")
		}
	}

	url := "https://" + addr + "/dw_tls"
	migrate := func(ca, cert, key string) (string, error) {
		c := exec.Command(cli, "migrate")
		c.Env = testenv.ChildEnv("DRIFTWATCH_CLICKHOUSE_URL="+url, "DRIFTWATCH_CLICKHOUSE_TLS_CA_FILE="+ca,
			"DRIFTWATCH_CLICKHOUSE_TLS_CERT_FILE="+cert, "DRIFTWATCH_CLICKHOUSE_TLS_KEY_FILE="+key)
		b, err := c.CombinedOutput()
		return string(b), err
	}
	if b, err := migrate(good.ca, good.clientCert, good.clientKey); err != nil {
		t.Fatalf("driftwatch migrate over HTTPS: %v\n%s", err, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := chclient.Config{URL: url, TLS: chclient.TLSFiles{CAFile: good.ca, CertFile: good.clientCert, KeyFile: good.clientKey}}
	conn, err := chclient.Open(ctx, cfg, false)
	if err != nil {
		t.Fatalf("chclient.Open over HTTPS: %v", err)
	}
	defer conn.Close()
	var tables uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = 'dw_tls'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables == 0 {
		t.Errorf("migrate over HTTPS created no table in dw_tls")
	}

	b, err := migrate(other.ca, good.clientCert, good.clientKey)
	t.Logf("untrusted CA: %s", strings.TrimSpace(b))
	if err == nil || !strings.Contains(b, "not signed by the CA in clickhouse_tls_ca_file") {
		t.Errorf("untrusted CA: want a failure saying the certificate is not signed by clickhouse_tls_ca_file, got %v:\n%s", err, b)
	}
	_, err = chclient.Open(ctx, chclient.Config{URL: url, TLS: chclient.TLSFiles{CAFile: good.ca}}, false)
	t.Logf("no client certificate: %v", err)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("no client certificate: want a TLS certificate error, got %v", err)
	}
	_, err = chclient.Open(ctx, chclient.Config{URL: url, TLS: chclient.TLSFiles{CAFile: good.ca, CertFile: other.clientCert, KeyFile: other.clientKey}}, false)
	t.Logf("client certificate of another CA: %v", err)
	if err == nil || !strings.Contains(err.Error(), "refused this client's TLS certificate") {
		t.Errorf("client certificate of another CA: want the server's refusal explained, got %v", err)
	}
}
