package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/netdumper/netdumper/remote"
	"github.com/netdumper/netdumper/tracker"
)

type serveOptions struct {
	state       string
	interval    time.Duration
	retention   time.Duration
	source      string
	host        string
	listen      string
	tokenFile   string
	insecure    bool
	tlsCert     string
	tlsKey      string
	tlsClientCA string
	maxStreams  int
	log         logFlags
}

func newServeCmd(e env) *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Track the host's sockets and serve their history over HTTP",
		Long: `serve tracks which process owns each TCP and UDP socket of this host, keeps
that history in --state (for enrich on this host, also after a restart), and
serves it to other machines over an HTTP API:

  GET /v1/bindings                          current bindings and addresses
  GET /v1/history?from=RFC3339&to=RFC3339   binding intervals of a window
  GET /v1/events?since=SEQ                  live bind/unbind events (NDJSON)
  GET /healthz, GET /metrics                health, Prometheus metrics

Every request but /healthz needs "Authorization: Bearer TOKEN" when a token
is set (--token-file, or $` + tokenEnv + `). serve refuses to listen on a
non-loopback address without a token unless --insecure-no-auth is given.
With --tls-cert/--tls-key it speaks HTTPS; --tls-client-ca also requires
client certificates signed by that CA.

Besides scanning the socket tables every --interval, serve follows socket
events as they happen with eBPF (--source auto, the default, where the
kernel allows it: Linux with BTF, run as root), so that connections shorter
than a scan are attributed too, from their exact start to their end. Where
eBPF cannot load, auto says why once and polls; --source ebpf fails
instead, --source poll does not try.

While it runs, serve holds the state directory's lock and records how to
reach it in serve.json there (with absolute paths of the token file and the
certificate), so that enrich and "bindings export" on this host ask it
instead; over HTTPS they trust exactly that certificate. SIGINT or SIGTERM
stop it cleanly.`,
		Example: `  netdumper serve
  netdumper serve --listen 0.0.0.0:7701 --token-file /etc/netdumper/token \
      --tls-cert /etc/netdumper/tls.crt --tls-key /etc/netdumper/tls.key`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), e, &o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.state, "state", defaultStateDir(e), "state `DIR` for the history")
	f.DurationVar(&o.interval, "interval", tracker.DefaultInterval, "time between scans (at least 100ms)")
	f.DurationVar(&o.retention, "retention", tracker.DefaultRetention, "how long history is kept")
	f.StringVar(&o.source, "source", tracker.EventsAuto, "socket events besides polling: auto (eBPF where the host can run it, else polling only, said once), ebpf (fail without it) or poll")
	f.StringVar(&o.host, "host", "", "host name bindings carry (default: the system's)")
	f.StringVar(&o.listen, "listen", remote.DefaultListen, "API `ADDRESS` (host:port)")
	f.StringVar(&o.tokenFile, "token-file", "", "bearer token `FILE` clients must present (default: $"+tokenEnv+")")
	f.BoolVar(&o.insecure, "insecure-no-auth", false, "allow a non-loopback --listen without a token")
	f.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this certificate `FILE` (PEM)")
	f.StringVar(&o.tlsKey, "tls-key", "", "the certificate's key `FILE` (PEM)")
	f.StringVar(&o.tlsClientCA, "tls-client-ca", "", "require client certificates signed by a CA of this `FILE` (PEM)")
	f.IntVar(&o.maxStreams, "max-streams", remote.DefaultMaxStreams, "maximum concurrent event streams")
	o.log.bind(f, "info", "")
	return cmd
}

func runServe(ctx context.Context, e env, o *serveOptions) error {
	log, err := o.log.logger(e.stderr, "info")
	if err != nil {
		return err
	}
	if o.state == "" {
		return usagef("no state directory: give --state")
	}
	// The flags first, before anything is opened, attached or created.
	if err := checkInterval("--interval", o.interval); err != nil {
		return err
	}
	if o.retention < tracker.MinRetention {
		return usagef("--retention %v: at least %v", o.retention, tracker.MinRetention)
	}
	if o.listen != "" {
		if err := checkListen("--listen", o.listen); err != nil {
			return err
		}
	}
	if o.maxStreams <= 0 {
		return usagef("--max-streams %d: want at least 1", o.maxStreams)
	}
	token, err := defaultToken(e, o.tokenFile)
	if err != nil {
		return err
	}
	if err := remote.CheckListen(o.listen, token != "", o.insecure); err != nil {
		return usageError{err}
	}
	if (o.tlsCert == "") != (o.tlsKey == "") || (o.tlsClientCA != "" && o.tlsCert == "") {
		return usagef("TLS needs --tls-cert and --tls-key (and --tls-client-ca only with them)")
	}
	sopts := remote.ServerOptions{Token: token, AllowNoAuth: o.insecure, MaxStreams: o.maxStreams, Logger: log}
	if o.tlsCert != "" {
		if sopts.TLS, err = remote.ServerTLSConfig(o.tlsCert, o.tlsKey, o.tlsClientCA); err != nil {
			return err
		}
	}
	switch o.source {
	case tracker.EventsAuto, tracker.EventsEBPF, tracker.EventsPoll:
	default:
		return usagef("--source %q: want auto, ebpf or poll", o.source)
	}
	scanner, closeScanner, err := newSystemScanner(log)
	if err != nil {
		return err
	}
	defer closeScanner()
	events, err := tracker.OpenEventSource(tracker.EventSourceOptions{Mode: o.source, Logger: log})
	if err != nil {
		return err
	}
	if events != nil {
		defer events.Close()
	}
	tr, err := tracker.New(tracker.Options{Scanner: scanner, Events: events, Interval: o.interval, Retention: o.retention,
		StateDir: o.state, Host: o.host, Logger: log})
	if err != nil {
		return err
	}
	defer tr.Close()
	sopts.Source = tr
	srv, err := remote.NewServer(sopts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	api := apiURL(ln.Addr(), sopts.TLS != nil)
	info := tracker.DaemonInfo{PID: os.Getpid(), Host: tr.Host(), Started: time.Now().UTC(), API: api}
	// Readers run in other directories: record absolute paths.
	tokenFile, err1 := absFile(o.tokenFile)
	certFile, err2 := absFile(o.tlsCert)
	if err := errors.Join(err1, err2); err != nil {
		ln.Close()
		return fmt.Errorf("daemon info: %w", err)
	}
	info.TokenFile, info.CertFile = tokenFile, certFile
	if err := tracker.WriteDaemonInfo(o.state, info); err != nil {
		ln.Close()
		return err
	}
	defer tracker.RemoveDaemonInfo(o.state)
	log.Info("serving", "api", api, "tls", sopts.TLS != nil, "client_certs", o.tlsClientCA != "", "auth", token != "")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var serveErr error
	wg.Go(func() {
		serveErr = srv.Serve(ctx, ln)
		cancel() // a failing server stops the tracker too
	})
	runErr := tr.Run(ctx)
	cancel()
	wg.Wait()
	log.Info("stopped")
	return errors.Join(runErr, serveErr)
}

// absFile is the absolute form of the file path p ("" stays "").
func absFile(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	return filepath.Abs(p)
}

// apiURL is how local readers reach the server: a wildcard listen
// address is reached on loopback.
func apiURL(a net.Addr, tls bool) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return scheme + "://" + a.String()
	}
	ip := ta.IP
	if ip.IsUnspecified() {
		if ip.To4() != nil {
			ip = net.IPv4(127, 0, 0, 1)
		} else {
			ip = net.IPv6loopback
		}
	}
	return fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(ip.String(), fmt.Sprint(ta.Port)))
}
