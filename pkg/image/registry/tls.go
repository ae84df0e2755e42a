package registry

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// tlsConfig builds an endpoint's TLS settings from skip_verify, CA files
// (added to the system pool) and client certificate pairs (a pair with no
// key file holds both in its certificate file). It also returns a key naming
// the settings by content, equal across calls for equal settings, so the
// client keeps one transport per endpoint. No settings: nil, "".
func tlsConfig(skipVerify bool, cas []string, pairs [][2]string) (*tls.Config, string, error) {
	if !skipVerify && len(cas) == 0 && len(pairs) == 0 {
		return nil, "", nil
	}
	key := sha256.New()
	fmt.Fprintf(key, "skip_verify=%v\n", skipVerify)
	cfg := &tls.Config{InsecureSkipVerify: skipVerify, MinVersion: tls.VersionTLS12}
	if len(cas) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, f := range cas {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, "", fmt.Errorf("read ca %s: %w", f, err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, "", fmt.Errorf("ca %s holds no PEM certificate: %w", f, errdefs.ErrInvalidArgument)
			}
			fmt.Fprintf(key, "ca %d\n", len(pem))
			key.Write(pem)
		}
		cfg.RootCAs = pool
	}
	for _, p := range pairs {
		certPEM, err := os.ReadFile(p[0])
		if err != nil {
			return nil, "", fmt.Errorf("read client certificate %s: %w", p[0], err)
		}
		keyPEM := certPEM
		if p[1] != "" {
			if keyPEM, err = os.ReadFile(p[1]); err != nil {
				return nil, "", fmt.Errorf("read client key %s: %w", p[1], err)
			}
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, "", fmt.Errorf("client certificate %s: %v: %w", p[0], err, errdefs.ErrInvalidArgument)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
		fmt.Fprintf(key, "client %d %d\n", len(certPEM), len(keyPEM))
		key.Write(certPEM)
		key.Write(keyPEM)
	}
	return cfg, hex.EncodeToString(key.Sum(nil)), nil
}
