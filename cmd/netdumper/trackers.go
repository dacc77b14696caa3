package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/netdumper/netdumper/remote"
)

// tokenEnv names the environment variable that holds the API token when
// no --token-file is given (serve and clients alike).
const tokenEnv = "NETDUMPER_TOKEN"

// trackerFlags are the flags of commands that ask remote trackers.
type trackerFlags struct {
	trackers  []string
	tokenFile string
	tlsCA     string
	tlsCert   string
	tlsKey    string
	timeout   time.Duration
}

func (t *trackerFlags) bind(f *pflag.FlagSet) {
	f.StringArrayVar(&t.trackers, "tracker", nil, "ask the tracker at `URL` (netdumper serve; repeatable); URL#token-file=FILE gives it its own token")
	f.StringVar(&t.tokenFile, "token-file", "", "bearer token `FILE` for the trackers (default: $"+tokenEnv+")")
	f.StringVar(&t.tlsCA, "tls-ca", "", "CA certificates `FILE` (PEM) that sign the trackers' certificates (default: the system's)")
	f.StringVar(&t.tlsCert, "tls-cert", "", "client certificate `FILE` (PEM) for trackers that require one")
	f.StringVar(&t.tlsKey, "tls-key", "", "client certificate's key `FILE` (PEM)")
	f.DurationVar(&t.timeout, "tracker-timeout", remote.DefaultTimeout, "wait at most this long for a tracker's answer")
}

// check checks the values of the flags.
func (t *trackerFlags) check() error {
	if (t.tlsCert == "") != (t.tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together: a client certificate needs its key")
	}
	return checkPositive("--tracker-timeout", t.timeout)
}

// defaultToken is the --token-file's token, else the environment's.
func defaultToken(e env, tokenFile string) (string, error) {
	if tokenFile != "" {
		return remote.ReadTokenFile(tokenFile)
	}
	return strings.TrimSpace(e.getenv(tokenEnv)), nil
}

// tokenSource names where defaultToken took its token from, for the
// error of a refused one; flag is how the token file was given.
func tokenSource(flag, tokenFile string) string {
	if tokenFile != "" {
		return flag + " " + tokenFile
	}
	return "$" + tokenEnv
}

// clientOptions builds the client options shared by all trackers.
func (t *trackerFlags) clientOptions(e env, log *slog.Logger) (remote.ClientOptions, error) {
	tok, err := defaultToken(e, t.tokenFile)
	if err != nil {
		return remote.ClientOptions{}, err
	}
	o := remote.ClientOptions{Token: tok, TokenSource: tokenSource("--token-file", t.tokenFile), Timeout: t.timeout, Logger: log}
	if t.tlsCA != "" || t.tlsCert != "" || t.tlsKey != "" {
		cfg, err := remote.ClientTLSConfig(t.tlsCA, t.tlsCert, t.tlsKey)
		if err != nil {
			return o, usageError{err}
		}
		o.TLS = cfg
	}
	return o, nil
}

// pool returns a pool of the --tracker flags (nil when there are none).
func (t *trackerFlags) pool(e env, log *slog.Logger) (*remote.Pool, error) {
	if len(t.trackers) == 0 {
		return nil, nil
	}
	opts, err := t.clientOptions(e, log)
	if err != nil {
		return nil, err
	}
	targets := make([]remote.Target, 0, len(t.trackers))
	for _, s := range t.trackers {
		tg, err := remote.ParseTarget(s)
		if err != nil {
			return nil, usageError{err}
		}
		if err := tg.LoadToken(); err != nil {
			return nil, err
		}
		targets = append(targets, tg)
	}
	p, err := remote.NewPool(targets, opts)
	if err != nil {
		return nil, usageError{err}
	}
	return p, nil
}

// reportPoolError reports each tracker that failed on its own line of
// stderr, and returns the error that ends the command: err itself unless
// it is a *remote.PoolError, else one saying how many of total failed.
func reportPoolError(e env, err error, total int) error {
	var pe *remote.PoolError
	if !errors.As(err, &pe) {
		return err
	}
	for _, f := range pe.Failed {
		fmt.Fprintf(e.stderr, "netdumper: %v\n", f)
	}
	return exitCodeError{code: exitFailure, err: fmt.Errorf("%d of %s failed", len(pe.Failed), count(total, "tracker", "trackers"))}
}

// logFlags are the --log-format and --log-level flags of the commands
// that run as daemons (serve, enrich --watch).
type logFlags struct {
	format, level string
}

// bind adds the flags to f; level is --log-level's default ("" when the
// command picks one, said in levelHelp).
func (l *logFlags) bind(f *pflag.FlagSet, level, levelHelp string) {
	f.StringVar(&l.format, "log-format", "text", "log format on stderr: text or json")
	f.StringVar(&l.level, "log-level", level, "log level: debug, info, warn or error"+levelHelp)
}

// logger returns the logger the flags ask for, writing to w; def is the
// level when --log-level is empty.
func (l *logFlags) logger(w io.Writer, def string) (*slog.Logger, error) {
	level := l.level
	if level == "" {
		level = def
	}
	return newLogger(w, l.format, level)
}

// newLogger returns a logger writing text or JSON to w at level.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}
