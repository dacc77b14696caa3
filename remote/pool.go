package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/netdumper/netdumper/tracker"
)

// Target is one tracker of a Pool.
type Target struct {
	// URL is the tracker's base URL (http or https).
	URL string
	// Token is the bearer token of this tracker ("": the pool's default).
	Token string
	// TokenFile is where Token was read from, if it was (informational).
	TokenFile string
}

// ParseTarget parses a tracker as given on the command line: a URL,
// optionally followed by "#token-file=PATH" naming the file that holds
// this tracker's token, e.g.
//
//	https://web1.example:7701#token-file=/etc/netdumper/web1.token
//
// The fragment is never sent to the tracker. ParseTarget does not read
// the token file: see LoadToken.
func ParseTarget(s string) (Target, error) {
	raw, frag, _ := strings.Cut(s, "#")
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("tracker %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return Target{}, fmt.Errorf("tracker %q: want an http:// or https:// URL", s)
	}
	if u.Host == "" {
		return Target{}, fmt.Errorf("tracker %q: no host", s)
	}
	t := Target{URL: raw}
	if frag != "" {
		opts, err := url.ParseQuery(frag)
		if err != nil {
			return Target{}, fmt.Errorf("tracker %q: options after '#': %w", s, err)
		}
		for k, vs := range opts {
			switch {
			case k != "token-file":
				return Target{}, fmt.Errorf("tracker %q: unknown option %q after '#' (want token-file=PATH)", s, k)
			case len(vs) != 1 || vs[0] == "":
				return Target{}, fmt.Errorf("tracker %q: token-file wants one path", s)
			}
			t.TokenFile = vs[0]
		}
	}
	return t, nil
}

// LoadToken reads t.TokenFile into t.Token, when a file is named.
func (t *Target) LoadToken() error {
	if t.TokenFile == "" {
		return nil
	}
	tok, err := ReadTokenFile(t.TokenFile)
	if err != nil {
		return fmt.Errorf("tracker %s: %w", t.URL, err)
	}
	t.Token = tok
	return nil
}

// TrackerError is the failure of one tracker of a Pool.
type TrackerError struct {
	URL string
	Err error
}

func (e *TrackerError) Error() string {
	// The client's errors start with the URL already.
	if msg := e.Err.Error(); strings.HasPrefix(msg, e.URL) {
		return "tracker " + msg
	}
	return "tracker " + e.URL + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *TrackerError) Unwrap() error { return e.Err }

// PoolError lists the trackers of a Pool that failed a request.
type PoolError struct {
	Failed []*TrackerError
}

func (e *PoolError) Error() string {
	msgs := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		msgs[i] = f.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns the failures.
func (e *PoolError) Unwrap() []error {
	out := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = f
	}
	return out
}

// Pool asks several trackers at once. A tracker that fails is named, with
// the reason, in the *PoolError of the request, for the caller to report
// (the pool itself logs changes of a tracker's state at debug level
// only, and its return at info level, so that a failure is not reported
// twice); it never delays the others beyond its own timeout.
type Pool struct {
	clients []*Client
	log     *slog.Logger

	mu   sync.Mutex
	down map[string]bool
}

// NewPool returns a pool of targets; opts applies to each (Token is the
// default for targets without their own).
func NewPool(targets []Target, opts ClientOptions) (*Pool, error) {
	if len(targets) == 0 {
		return nil, errors.New("no trackers")
	}
	p := &Pool{log: opts.Logger, down: make(map[string]bool)}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	seen := make(map[string]bool)
	for _, t := range targets {
		o := opts
		if t.Token != "" {
			o.Token, o.TokenSource = t.Token, "this tracker's own token"
			if t.TokenFile != "" {
				o.TokenSource = "#token-file=" + t.TokenFile
			}
		}
		c, err := NewClient(t.URL, o)
		if err != nil {
			return nil, err
		}
		if seen[c.URL()] {
			return nil, fmt.Errorf("tracker %s given twice", c.URL())
		}
		seen[c.URL()] = true
		p.clients = append(p.clients, c)
	}
	return p, nil
}

// Clients are the pool's clients, in the order of the targets.
func (p *Pool) Clients() []*Client { return p.clients }

// note records the outcome of a request to c, logging changes of state.
func (p *Pool) note(c *Client, err error) {
	p.mu.Lock()
	was := p.down[c.URL()]
	p.down[c.URL()] = err != nil
	p.mu.Unlock()
	// The failure itself is the caller's to report (PoolError).
	switch {
	case err != nil && !was:
		p.log.Debug("tracker failed", "url", c.URL(), "err", err)
	case err != nil:
		p.log.Debug("tracker still failing", "url", c.URL(), "err", err)
	case was:
		p.log.Info("tracker answers again", "url", c.URL())
	}
}

// each runs fn for every client concurrently and gathers the failures.
func (p *Pool) each(ctx context.Context, fn func(ctx context.Context, i int, c *Client) error) error {
	errs := make([]error, len(p.clients))
	var wg sync.WaitGroup
	for i, c := range p.clients {
		wg.Go(func() {
			err := fn(ctx, i, c)
			if ctx.Err() == nil {
				p.note(c, err)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	var pe PoolError
	for i, err := range errs {
		if err != nil {
			pe.Failed = append(pe.Failed, &TrackerError{URL: p.clients[i].URL(), Err: err})
		}
	}
	if len(pe.Failed) > 0 {
		return &pe
	}
	return nil
}

// Bindings fetches the current view of every tracker concurrently. The
// views of trackers that failed are nil, and the error is a *PoolError
// naming them (or ctx's error).
func (p *Pool) Bindings(ctx context.Context) ([]*tracker.View, error) {
	views := make([]*tracker.View, len(p.clients))
	err := p.each(ctx, func(ctx context.Context, i int, c *Client) error {
		v, err := c.Bindings(ctx)
		views[i] = v
		return err
	})
	return views, err
}

// History fetches the history overlapping [from, to] of every tracker
// concurrently, each whole or not at all. Host names are made unique:
// when two trackers report the same host, the later one's becomes
// "host@URL-host" (logged), so that address ownership stays per tracker.
// The histories of trackers that failed are missing, and the error is a
// *PoolError naming them (or ctx's error).
func (p *Pool) History(ctx context.Context, from, to time.Time) ([]tracker.HostHistory, error) {
	per := make([][]tracker.HostHistory, len(p.clients))
	err := p.each(ctx, func(ctx context.Context, i int, c *Client) error {
		hs, err := c.HostHistory(ctx, from, to)
		per[i] = hs
		return err
	})
	var out []tracker.HostHistory
	names := make(map[string]bool)
	for i, hs := range per {
		for _, h := range hs {
			if names[h.Host] {
				u, _ := url.Parse(p.clients[i].URL())
				name := h.Host + "@" + u.Host
				p.log.Warn("two trackers report the same host name; renaming one", "host", h.Host, "url", p.clients[i].URL(), "as", name)
				h.Host = name
				for j := range h.Bindings {
					h.Bindings[j].Host = name
				}
			}
			names[h.Host] = true
			out = append(out, h)
		}
	}
	return out, err
}

// Index builds an attribution index for flows seen in [from, to] from
// every tracker that answers: the history fetched is widened by the
// index's tolerance on both sides, and each tracker's host is added with
// its own addresses, so that a wildcard listener matches only the flows
// to addresses its host owned then. The index is never nil unless ctx
// ended; a *PoolError names the trackers left out.
func (p *Pool) Index(ctx context.Context, from, to time.Time, opts tracker.IndexOptions) (*tracker.Index, error) {
	tol := opts.Tolerance
	if tol == 0 {
		tol = tracker.DefaultTolerance
	}
	if tol > 0 {
		if !from.IsZero() {
			from = from.Add(-tol)
		}
		if !to.IsZero() {
			to = to.Add(tol)
		}
	}
	hosts, err := p.History(ctx, from, to)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	ib := tracker.NewIndexBuilder()
	for _, h := range hosts {
		ib.AddHost(h)
	}
	return ib.Build(opts), err
}

// Name names the pool's trackers (for messages; Pool is a bindings
// source of internal/enrich).
func (p *Pool) Name() string {
	urls := make([]string, len(p.clients))
	for i, c := range p.clients {
		urls[i] = c.URL()
	}
	return strings.Join(urls, ", ")
}

// Add adds to ib the history overlapping [from, to] of every tracker
// that answers, each host with its own addresses (see History). A
// *PoolError names those that did not; what the others gave is added
// all the same.
func (p *Pool) Add(ctx context.Context, ib *tracker.IndexBuilder, from, to time.Time) error {
	hosts, err := p.History(ctx, from, to)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, h := range hosts {
		ib.AddHost(h)
	}
	return err
}

// Mirrors returns a Mirror per tracker (run each, or RunMirrors).
func (p *Pool) Mirrors(opts MirrorOptions) []*Mirror {
	ms := make([]*Mirror, len(p.clients))
	for i, c := range p.clients {
		ms[i] = NewMirror(c, opts)
	}
	return ms
}

// RunMirrors runs mirrors until ctx ends.
func RunMirrors(ctx context.Context, ms []*Mirror) {
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() { m.Run(ctx) })
	}
	wg.Wait()
}
