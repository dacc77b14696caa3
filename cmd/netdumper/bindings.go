package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/netdumper/netdumper/remote"
	"github.com/netdumper/netdumper/tracker"
)

func newBindingsCmd(e env) *cobra.Command {
	var tf trackerFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "bindings",
		Short: "Show which process owns each socket, here or on remote trackers",
		Long: `bindings prints the current bindings (sockets and their owning processes) as a
table (proto, local, remote, state, pid, process, user) or, with --json, in
the bindings file format. Without --tracker it scans this host once; with
--tracker it asks those trackers (netdumper serve) for theirs.

A tracker that needs its own token is given as URL#token-file=FILE; the
others use --token-file (or $` + tokenEnv + `).`,
		Example: `  netdumper bindings
  netdumper bindings --json --tracker https://web1:7701 --token-file /etc/netdumper/token
  netdumper bindings --tracker 'https://db1:7701#token-file=/etc/netdumper/db1.token'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBindings(cmd.Context(), e, &tf, asJSON)
		},
	}
	tf.bind(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the bindings file format (JSON)")
	cmd.AddCommand(newExportCmd(e))
	return cmd
}

func runBindings(ctx context.Context, e env, tf *trackerFlags, asJSON bool) error {
	if err := tf.check(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pool, err := tf.pool(e, log)
	if err != nil {
		return err
	}
	var views []*tracker.View
	var fetchErr error
	if pool == nil {
		v, err := scanOnce(ctx, log)
		if err != nil {
			return err
		}
		views = []*tracker.View{v}
	} else {
		all, err := pool.Bindings(ctx)
		var pe *remote.PoolError
		if err != nil && !errors.As(err, &pe) {
			return err
		}
		// Each tracker that failed is named once, with the reason.
		fetchErr = reportPoolError(e, err, len(all))
		for _, v := range all {
			if v != nil {
				views = append(views, v)
			}
		}
		if len(views) == 0 {
			return fetchErr // no table, no document: nothing answered
		}
	}
	if asJSON {
		hosts := make([]tracker.HostHistory, len(views))
		for i, v := range views {
			hosts[i] = v.HostHistory
		}
		if err := tracker.WriteFile(e.stdout, hosts); err != nil {
			return err
		}
	} else if err := printBindings(e.stdout, views); err != nil {
		return err
	}
	return fetchErr
}

// scanOnce scans this host once with a temporary tracker.
func scanOnce(ctx context.Context, log *slog.Logger) (*tracker.View, error) {
	scanner, closeScanner, err := newSystemScanner(log)
	if err != nil {
		return nil, err
	}
	defer closeScanner()
	tr, err := tracker.New(tracker.Options{Scanner: scanner, Logger: log})
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	if err := tr.ScanOnce(ctx); err != nil {
		return nil, err
	}
	return tr.Current(), nil
}

// printBindings prints views as a table; a HOST column appears when there
// are several.
func printBindings(w io.Writer, views []*tracker.View) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	multi := len(views) > 1
	if multi {
		fmt.Fprint(tw, "HOST\t")
	}
	fmt.Fprintln(tw, "PROTO\tLOCAL\tREMOTE\tSTATE\tPID\tPROCESS\tUSER")
	for _, v := range views {
		for _, b := range v.Bindings {
			if multi {
				fmt.Fprintf(tw, "%s\t", v.Host)
			}
			remoteEnd, pid, name, user := "*", "-", "-", "-"
			if b.Connected() {
				remoteEnd = b.Remote.String()
			}
			if p := b.Owner; p != nil {
				pid, name, user = strconv.Itoa(int(p.PID)), p.Name, p.User
				if user == "" {
					user = strconv.Itoa(int(p.UID))
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Proto, b.Local, remoteEnd, b.State, pid, tabSafe(name), tabSafe(user))
		}
	}
	return tw.Flush()
}

// tabSafe keeps a field on its line and in its column.
func tabSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func newExportCmd(e env) *cobra.Command {
	var tf trackerFlags
	var from, to, state string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the bindings history of a time window as a bindings file",
		Long: `export writes the binding intervals overlapping [--from, --to] in the bindings
file format (JSON) to stdout; enrich --bindings reads it. Times are RFC 3339
(2023-11-14T22:00:00Z) or a duration meaning that long ago (90m); without
them the window is open on that side.

The history comes from the local state directory, read-only; while
netdumper serve holds it, from that daemon's API (found through serve.json
in the state directory). With --tracker it comes from those trackers.`,
		Example: `  netdumper bindings export --from 2h > last-2h.json
  netdumper bindings export --tracker https://web1:7701 --from 2023-11-14T22:00:00Z --to 2023-11-14T22:05:00Z`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			f, err := parseWhen("--from", from, now)
			if err != nil {
				return err
			}
			t, err := parseWhen("--to", to, now)
			if err != nil {
				return err
			}
			if !f.IsZero() && !t.IsZero() && t.Before(f) {
				return usagef("--to %s is before --from %s", to, from)
			}
			if cmd.Flags().Changed("state") && len(tf.trackers) > 0 {
				// Silently ignoring --state would export less than asked.
				return usagef("--state and --tracker cannot be combined: export writes the history of the local state directory or of the trackers, not both")
			}
			return runExport(cmd.Context(), e, &tf, state, f, t)
		},
	}
	tf.bind(cmd.Flags())
	cmd.Flags().StringVar(&from, "from", "", "start of the window (RFC 3339 time, or a duration ago)")
	cmd.Flags().StringVar(&to, "to", "", "end of the window (RFC 3339 time, or a duration ago)")
	cmd.Flags().StringVar(&state, "state", defaultStateDir(e), "the local tracker's state `DIR`")
	return cmd
}

// parseWhen parses an RFC 3339 time or a duration before now.
func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("%s %q: want an RFC 3339 time (2023-11-14T22:00:00Z) or a duration ago (90m)", flag, s)
}

func runExport(ctx context.Context, e env, tf *trackerFlags, state string, from, to time.Time) error {
	if err := tf.check(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pool, err := tf.pool(e, log)
	if err != nil {
		return err
	}
	if pool != nil {
		if cs := pool.Clients(); len(cs) == 1 {
			return cs[0].Export(ctx, e.stdout, from, to)
		}
		hosts, err := pool.History(ctx, from, to)
		if err != nil {
			// All or nothing: a partial export would mislead.
			return reportPoolError(e, err, len(pool.Clients()))
		}
		return tracker.WriteFile(e.stdout, hosts)
	}
	if state == "" {
		return usagef("no state directory: give --state or --tracker")
	}
	st, err := tracker.OpenStore(state, tracker.StoreOptions{ReadOnly: true, LockTimeout: 200 * time.Millisecond})
	if errors.Is(err, tracker.ErrStateLocked) {
		c, derr := daemonClient(e, state, tf, log)
		if derr != nil {
			return fmt.Errorf("%w; asking the running netdumper serve: %w", err, derr)
		}
		return c.Export(ctx, e.stdout, from, to)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	return st.Export(ctx, e.stdout, from, to)
}

// daemonClient returns a client of the netdumper serve that holds the
// state directory, as its serve.json describes it. Its token comes from
// the token file serve.json names, else $NETDUMPER_TOKEN.
func daemonClient(e env, state string, tf *trackerFlags, log *slog.Logger) (*remote.Client, error) {
	info, err := tracker.ReadDaemonInfo(state)
	if err != nil {
		return nil, err
	}
	return daemonClientFor(e, info, tf, log)
}

// daemonClientFor returns a client of the daemon info describes. Over
// HTTPS it trusts the daemon's own certificate (see daemonTLS); tf's
// --tls-ca, --tls-cert and --tls-key apply too.
func daemonClientFor(e env, info tracker.DaemonInfo, tf *trackerFlags, log *slog.Logger) (*remote.Client, error) {
	if info.API == "" {
		return nil, fmt.Errorf("the daemon (pid %d) serves no API", info.PID)
	}
	tok, err := defaultToken(e, info.TokenFile)
	if err != nil {
		return nil, err
	}
	opts := remote.ClientOptions{Token: tok, TokenSource: tokenSource("the token file of serve.json,", info.TokenFile), Logger: log}
	if strings.HasPrefix(info.API, "https:") {
		if opts.TLS, err = daemonTLS(info.API, info.CertFile, tf, log); err != nil {
			return nil, err
		}
	}
	return remote.NewClient(info.API, opts)
}

// daemonTLS returns the TLS settings of a client of the local serve at
// api whose certificate file (PEM, leaf first) is certFile, as serve.json
// records them. The serve is accepted when the certificate it presents is
// exactly the leaf of that file (pinned, whatever the host name:
// serve.json gives 127.0.0.1 for a wildcard listen address, which a host's
// certificate does not name). Otherwise, or when the file cannot be read,
// the certificate must verify as usual against --tls-ca (default: the
// system's roots) and name api's host. --tls-cert/--tls-key are the client
// certificate, for a serve that requires one.
func daemonTLS(api, certFile string, tf *trackerFlags, log *slog.Logger) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if tf != nil && (tf.tlsCA != "" || tf.tlsCert != "" || tf.tlsKey != "") {
		var err error
		if cfg, err = remote.ClientTLSConfig(tf.tlsCA, tf.tlsCert, tf.tlsKey); err != nil {
			return nil, usageError{err}
		}
	}
	if certFile == "" {
		return cfg, nil
	}
	pinned, err := leafCertificate(certFile)
	if err != nil {
		log.Warn("cannot read the local serve's certificate to trust it; verifying it with --tls-ca or the system's roots instead",
			"file", certFile, "err", err)
		return cfg, nil
	}
	u, err := url.Parse(api)
	if err != nil {
		return nil, fmt.Errorf("serve.json: API %q: %w", api, err)
	}
	// The name to verify is the URL's host: Go sends no SNI for an IP
	// address, so the connection state's ServerName would be empty there,
	// and an empty name is not checked at all.
	host := u.Hostname()
	roots := cfg.RootCAs          // nil: the system's
	cfg.InsecureSkipVerify = true // VerifyConnection does the checking
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the local serve presented no certificate")
		}
		leaf := cs.PeerCertificates[0]
		if bytes.Equal(leaf.Raw, pinned.Raw) {
			return nil
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host}); err != nil {
			return fmt.Errorf("the API's certificate is not the local serve's own (%s), and does not verify: %w", certFile, err)
		}
		return nil
	}
	return cfg, nil
}

// leafCertificate returns the first certificate of a PEM file.
func leafCertificate(file string) (*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return nil, fmt.Errorf("%s: no PEM certificate found", file)
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			return c, nil
		}
	}
}
