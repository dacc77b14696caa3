package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netdumper/netdumper/tracker"
)

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServe runs "netdumper serve" in this process with args, a fresh
// --state, a loopback API on a free port and polling only, until the test
// ends. It returns the state directory and its serve.json once written.
func startServe(t *testing.T, args ...string) (string, tracker.DaemonInfo) {
	t.Helper()
	state := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr lockedBuffer
	exited := make(chan int, 1)
	args = append([]string{"serve", "--state", state, "--listen", "127.0.0.1:0", "--source", "poll", "--interval", "100ms"}, args...)
	go func() {
		exited <- run(ctx, args, env{stdin: strings.NewReader(""), stdout: &stderr, stderr: &stderr, getenv: os.Getenv})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("serve did not stop:\n%s", stderr.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case code := <-exited:
			exited <- code
			t.Fatalf("serve exited with %d:\n%s", code, stderr.String())
		default:
		}
		if info, err := tracker.ReadDaemonInfo(state); err == nil {
			return state, info
		}
		if time.Now().After(deadline) {
			t.Fatalf("no serve.json after 10s:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeRecordsAbsolutePaths: serve.json names the token file by its
// absolute path, so that enrich and bindings export find it from any
// directory, although serve was given a relative one.
func TestServeRecordsAbsolutePaths(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("token", []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state, info := startServe(t, "--token-file", "token")
	if want := filepath.Join(dir, "token"); info.TokenFile != want {
		t.Errorf("serve.json token_file %q, want %q", info.TokenFile, want)
	}
	t.Chdir(t.TempDir())
	r := runNetdumper(t, "UTC", "bindings", "export", "--state", state, "--from", "1m")
	if r.code != 0 || !strings.Contains(r.stdout, `"version"`) {
		t.Errorf("bindings export from another directory: exit %d\n%s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

// writeSelfSigned writes a self-signed ECDSA certificate for names (DNS
// names or IP addresses) and its key as PEM files in dir.
func writeSelfSigned(t *testing.T, dir, prefix string, names ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: names[0]},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, prefix+".crt"), filepath.Join(dir, prefix+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestLocalServeOverTLS: enrich's local source and bindings export reach
// a serve on this host that speaks HTTPS. They trust exactly the
// certificate serve.json names (here one for another host name than the
// 127.0.0.1 of its API); a different certificate is refused unless it
// verifies against --tls-ca and names the API's host.
func TestLocalServeOverTLS(t *testing.T) {
	_, file, _, _ := enrichSetup(t)
	for _, tc := range []struct {
		name     string
		names    []string // the serve certificate's
		swap     bool     // replace the certificate file once serve runs
		withCA   bool     // pass the serve certificate as --tls-ca
		wantCode int
		wantErr  string
	}{
		{"pinned, other host name", []string{"collector.example"}, false, false, 0, ""},
		{"file replaced", []string{"collector.example", "127.0.0.1"}, true, false, exitFailure, "not the local serve's own"},
		{"file replaced, verified by --tls-ca", []string{"collector.example", "127.0.0.1"}, true, true, 0, ""},
		// Signed by --tls-ca is not enough: the certificate must name the
		// API's host, as for a remote tracker.
		{"file replaced, --tls-ca, another host name", []string{"collector.example"}, true, true, exitFailure, "cannot validate certificate for 127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			certFile, _ := writeSelfSigned(t, dir, "serve", tc.names...)
			state, info := startServe(t, "--tls-cert", "serve.crt", "--tls-key", "serve.key") // relative on purpose
			if !strings.HasPrefix(info.API, "https://127.0.0.1:") || info.CertFile != certFile {
				t.Fatalf("serve.json: api %q, cert_file %q, want https://127.0.0.1:PORT and %q", info.API, info.CertFile, certFile)
			}
			var flags []string
			if tc.withCA {
				ca := filepath.Join(t.TempDir(), "ca.crt")
				b, _ := os.ReadFile(certFile)
				os.WriteFile(ca, b, 0o644)
				flags = []string{"--tls-ca", ca}
			}
			if tc.swap {
				other, _ := writeSelfSigned(t, t.TempDir(), "other", tc.names...)
				b, _ := os.ReadFile(other)
				os.WriteFile(certFile, b, 0o644)
			}
			t.Chdir(t.TempDir())
			for _, args := range [][]string{
				append([]string{"bindings", "export", "--state", state, "--from", "1m"}, flags...),
				append([]string{"enrich", "--dry-run", "--state", state, file}, flags...),
			} {
				r := runNetdumper(t, "UTC", args...)
				if r.code != tc.wantCode || (tc.wantErr != "" && !strings.Contains(r.stderr, tc.wantErr)) {
					t.Errorf("%s: exit %d, want %d (stderr %q)\n%s", strings.Join(args[:2], " "), r.code, tc.wantCode, r.stderr, r.stdout)
				}
			}
		})
	}
}

// TestServeBadFlags: bad flags are usage errors (exit 2), found before
// anything is opened or created.
func TestServeBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--interval", "10ms"}, "--interval"},
		{[]string{"--retention", "30s"}, "--retention"},
		{[]string{"--listen", "nonsense"}, "HOST:PORT"},
		{[]string{"--listen", "127.0.0.1:99999"}, "--listen \"127.0.0.1:99999\": port"},
		{[]string{"--listen", "127.0.0.1:-1"}, "--listen"},
		{[]string{"--max-streams", "0"}, "--max-streams 0"},
		{[]string{"--max-streams", "-3"}, "--max-streams -3"},
	} {
		state := filepath.Join(t.TempDir(), "state")
		// Bounded: without the check, serve would run.
		r := runNetdumperIn(t, strings.NewReader(""), 5*time.Second, append([]string{"serve", "--state", state, "--source", "poll"}, tc.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("serve %v: exit %d, want %d naming %s; stderr %q", tc.args, r.code, exitUsage, tc.want, r.stderr)
		}
		if _, err := os.Stat(state); err == nil {
			t.Errorf("serve %v created the state directory", tc.args)
		}
	}
}
