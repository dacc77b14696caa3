package remote

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netdumper/netdumper/tracker"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial int64

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate and key signed by ca into dir and returns
// their paths.
func (ca *testCA) issue(t *testing.T, dir, name string, server bool) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	write(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	return certFile, keyFile
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := newCA(t, "netdumper test CA"), newCA(t, "another CA")
	caFile, otherFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "other.pem")
	write(t, caFile, ca.pem)
	write(t, otherFile, other.pem)
	srvCert, srvKey := ca.issue(t, dir, "server", true)
	goodCert, goodKey := ca.issue(t, dir, "client", false)
	badCert, badKey := other.issue(t, dir, "intruder", false)

	tt := webTracker(t, tracker.Options{})
	cfg, err := ServerTLSConfig(srvCert, srvKey, caFile)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, ServerOptions{Source: tt, TLS: cfg, Token: "tok"})
	if !strings.HasPrefix(ts.URL, "https://") {
		t.Fatal(ts.URL)
	}
	tests := []struct {
		name              string
		ca, cert, key     string
		ok                bool
		wantErrSubstrings []string
	}{
		{"client certificate from the CA", caFile, goodCert, goodKey, true, nil},
		{"client certificate from another CA", caFile, badCert, badKey, false, []string{"requires a client certificate signed by a CA it trusts"}},
		{"no client certificate", caFile, "", "", false, []string{"requires a client certificate", "none was sent"}},
		{"server not trusted", otherFile, goodCert, goodKey, false, []string{"unknown authority", "not signed by a CA this client trusts"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tcfg, err := ClientTLSConfig(tc.ca, tc.cert, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			c := newClient(t, ts.URL, ClientOptions{TLS: tcfg, Token: "tok"})
			v, err := c.Bindings(context.Background())
			if tc.ok {
				if err != nil || len(v.Bindings) != 3 {
					t.Fatalf("Bindings over TLS: %v", err)
				}
				// Streams work over TLS (HTTP/2 or 1.1) too.
				st, err := c.Events(context.Background(), v.Seq)
				if err != nil {
					t.Fatalf("Events over TLS: %v", err)
				}
				st.Close()
				return
			}
			if err == nil {
				t.Fatal("request accepted, want a TLS failure")
			}
			for _, s := range tc.wantErrSubstrings {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
	// Plain HTTP to the TLS port fails.
	if _, err := newClient(t, strings.Replace(ts.URL, "https", "http", 1), ClientOptions{}).Bindings(context.Background()); err == nil {
		t.Error("plain HTTP to the TLS server accepted")
	}
	// Bad files give clear errors.
	if _, err := ServerTLSConfig(srvCert, "", ""); err == nil {
		t.Error("certificate without key accepted")
	}
	if _, err := ClientTLSConfig(filepath.Join(dir, "server.key"), "", ""); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("CA file without certificates: %v", err)
	}
}

// TestTokenTimingNoLeak checks that the time to refuse a wrong token does
// not depend on how much of it is right. The measurement is shown to
// work first: a checker that compares byte by byte and pays 20 µs per
// matching byte is detected. Then the real checker must show no such
// difference. The assertion only fails when every round shows the same
// sign and a large difference, which noise does not produce.
func TestTokenTimingNoLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	const token = "0123456789abcdef0123456789abcdef"
	early := "X" + token[1:]           // wrong in the first byte
	late := token[:len(token)-1] + "X" // wrong in the last byte

	tt := webTracker(t, tracker.Options{})
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer hc.CloseIdleConnections()
	var url string

	// measure returns, per round, the relative difference of the median
	// times (late - early) / early.
	measure := func() []float64 {
		const rounds, n = 5, 150
		out := make([]float64, rounds)
		for r := range rounds {
			var te, tl []time.Duration
			for i := range 2 * n {
				tok := early
				if i%2 == 1 {
					tok = late
				}
				req, _ := http.NewRequest(http.MethodGet, url+"/v1/bindings", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				start := time.Now()
				resp, err := hc.Do(req)
				d := time.Since(start)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401", resp.StatusCode)
				}
				if i%2 == 1 {
					tl = append(tl, d)
				} else {
					te = append(te, d)
				}
			}
			me, ml := median(te), median(tl)
			out[r] = float64(ml-me) / float64(me)
		}
		return out
	}
	leaks := func(diffs []float64) bool {
		for _, d := range diffs {
			if d < 0.2 {
				return false
			}
		}
		return true
	}

	// A leaky checker is detected.
	leaky, err := NewServer(ServerOptions{Source: tt, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	leaky.check = func(got string) bool {
		for i := 0; i < len(got) && i < len(token); i++ {
			if got[i] != token[i] {
				return false
			}
			spin(20 * time.Microsecond)
		}
		return got == token
	}
	url = serveServer(t, leaky).URL
	if d := measure(); !leaks(d) {
		t.Fatalf("the measurement cannot see a 20 µs/byte leak (relative differences %v): it proves nothing", d)
	}
	url = startServer(t, ServerOptions{Source: tt, Token: token}).URL
	if d := measure(); leaks(d) || allAbove(d, 0.1) || allBelow(d, -0.1) {
		t.Errorf("refusing a token wrong in its last byte takes consistently longer/shorter than one wrong in its first (relative differences %v)", d)
	}
}

func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func allAbove(ds []float64, v float64) bool {
	for _, d := range ds {
		if d <= v {
			return false
		}
	}
	return true
}

func allBelow(ds []float64, v float64) bool {
	for _, d := range ds {
		if d >= v {
			return false
		}
	}
	return true
}
