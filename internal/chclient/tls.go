package chclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// TLSFiles names the PEM files of a TLS connection to ClickHouse: CAFile
// holds the certificates that sign the server's (the system roots when
// empty); CertFile and KeyFile, set together, are the client certificate a
// server that verifies its clients asks for.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

// Set reports whether any file is named.
func (f TLSFiles) Set() bool { return f.CAFile != "" || f.CertFile != "" || f.KeyFile != "" }

// Config loads the files into a TLS client configuration (TLS 1.2 or
// later). Each error names the file and what is wrong with it.
func (f TLSFiles) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	var errs []error
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("read ClickHouse TLS CA file: %w", err))
		default:
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("ClickHouse TLS CA file %s holds no PEM certificate", f.CAFile))
			}
			c.RootCAs = pool
		}
	}
	switch {
	case (f.CertFile == "") != (f.KeyFile == ""):
		errs = append(errs, errors.New("ClickHouse TLS client certificate and key go together: set both the cert file and the key file, or neither"))
	case f.CertFile != "":
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("load ClickHouse TLS client certificate %s and key %s: %w", f.CertFile, f.KeyFile, err))
		} else {
			c.Certificates = []tls.Certificate{cert}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// explainTLS adds what to do to a TLS failure of a connection attempt;
// other errors pass unchanged. clickhouse-go flattens some errors to
// text, so the message is looked at as well as the chain.
func explainTLS(err error, files TLSFiles) error {
	if err == nil {
		return nil
	}
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	msg := err.Error()
	switch {
	case errors.As(err, &ua), strings.Contains(msg, "certificate signed by unknown authority"):
		if files.CAFile != "" {
			return fmt.Errorf("%w (the server's TLS certificate is not signed by the CA in clickhouse_tls_ca_file %s)", err, files.CAFile)
		}
		return fmt.Errorf("%w (the server's TLS certificate is not signed by a system CA: name its CA in clickhouse_tls_ca_file)", err)
	case errors.As(err, &hn), strings.Contains(msg, "certificate is valid for"), strings.Contains(msg, "doesn't contain any IP SANs"):
		return fmt.Errorf("%w (the server's TLS certificate does not name the host in clickhouse_url)", err)
	case errors.As(err, &ci), strings.Contains(msg, "certificate has expired"):
		return fmt.Errorf("%w (the server's TLS certificate is not valid)", err)
	case strings.Contains(msg, "certificate required"), strings.Contains(msg, "bad certificate"), strings.Contains(msg, "unknown certificate authority"):
		return fmt.Errorf("%w (the server refused this client's TLS certificate: set clickhouse_tls_cert_file and clickhouse_tls_key_file to a certificate its CA signed)", err)
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("%w (the server does not speak TLS on this port: use http://)", err)
	}
	return err
}
