package enrich

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/netdumper/netdumper/internal/services"
	"github.com/netdumper/netdumper/nfcap"
	"github.com/netdumper/netdumper/remote"
	"github.com/netdumper/netdumper/tracker"
)

// Options configure a Job.
type Options struct {
	// Sources give the bindings; at least one is needed.
	Sources []Source
	// Label is the template for matched flows; nil means "{process}".
	Label *Template
	// Unknown is the template for flows no binding matched that carry no
	// username; nil leaves them without one. It never replaces a username
	// a record already carries, with or without Overwrite.
	Unknown *Template
	// Services names well-known ports for {service}; nil means the
	// built-in table.
	Services *services.Table
	// Overwrite replaces usernames records already carry with the label
	// of a binding that matched (never with the Unknown text).
	Overwrite bool
	// Tolerance is the clock-skew tolerance around a flow's times; 0
	// means tracker.DefaultTolerance, a negative value none (see
	// ToleranceOption).
	Tolerance time.Duration
	// Recompress and Compression choose the output compression; by
	// default the input's is kept.
	Recompress  bool
	Compression nfcap.Compression
	// TopN is how many unmatched endpoints a summary lists (default 10).
	TopN int
	// Logger; nil discards.
	Logger *slog.Logger
}

// Job enriches nfdump files. It is safe to use for one file at a time.
type Job struct {
	opts Options
	log  *slog.Logger
}

// NewJob checks opts and returns a Job.
func NewJob(opts Options) (*Job, error) {
	if len(opts.Sources) == 0 {
		return nil, errors.New("no bindings source")
	}
	if opts.Label == nil {
		t, err := ParseTemplate("{process}")
		if err != nil {
			return nil, err
		}
		opts.Label = t
	}
	if opts.Services == nil {
		opts.Services = services.Builtin()
	}
	if opts.Tolerance == 0 {
		opts.Tolerance = tracker.DefaultTolerance
	}
	if opts.TopN == 0 {
		opts.TopN = 10
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Job{opts: opts, log: log}, nil
}

// Endpoint is a local endpoint of unmatched flows.
type Endpoint struct {
	Proto string     `json:"proto"`
	Addr  netip.Addr `json:"addr"`
	Port  uint16     `json:"port"`
	// Local is false when no source knew which end of the flows is the
	// host's; the endpoint is then the end with the lower port.
	Local bool  `json:"local"`
	Flows int64 `json:"flows"`
}

// Summary describes what enrichment did (or would do) to one file.
type Summary struct {
	Path string `json:"path"`
	// First and Last are the time window of the file's flows; zero (and
	// left out of the JSON) when it has none.
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	Flows int64     `json:"flows"`
	// Matched flows per kind.
	Exact    int64 `json:"matched_exact"`
	Listener int64 `json:"matched_listener"`
	Wildcard int64 `json:"matched_wildcard"`
	// Unmatched flows (ICMP and other protocols included).
	Unmatched    int64      `json:"unmatched"`
	TopUnmatched []Endpoint `json:"top_unmatched,omitempty"`
	// Written is what the rewrite did (zero in a dry run).
	Written  nfcap.RewriteStats `json:"written"`
	Bindings int                `json:"bindings"` // intervals indexed for the file's window
	DryRun   bool               `json:"dry_run"`
	Elapsed  time.Duration      `json:"elapsed_ns"`
	Error    string             `json:"error,omitempty"`
}

// Matched returns the number of flows a binding matched.
func (s *Summary) Matched() int64 { return s.Exact + s.Listener + s.Wildcard }

// MatchRate returns the matched share of flows, 0..1.
func (s *Summary) MatchRate() float64 {
	if s.Flows == 0 {
		return 0
	}
	return float64(s.Matched()) / float64(s.Flows)
}

// Plan is one file prepared for enrichment: its time window and the index
// of the bindings that overlap it. Its Label method is the labelling
// function handed to nfcap.Rewrite, and it counts what it sees; NewLabel
// gives more labelling functions for parallel workers, whose counts
// Summary adds up.
type Plan struct {
	job   *Job
	Path  string
	First time.Time
	Last  time.Time
	Index *tracker.Index

	base   *labeler
	mu     sync.Mutex
	forks  []*labeler
	header Summary
}

// labeler labels flows for one goroutine: its caches and counters are its
// own; the index is shared (read-only).
type labeler struct {
	p         *Plan
	counts    Summary
	buf       []byte
	fields    LabelFields
	labels    []string // per index position; valid where known is set
	known     []bool
	unknown   map[unknownKey]string
	unmatched heavyHitters
	lastAddr  [2]netip.Addr
	lastOwned [2]bool
}

type unknownKey struct{ service, host string }

type endpointKey struct {
	addr  [16]byte
	port  uint16
	proto uint8
	local bool
}

func (p *Plan) newLabeler() *labeler {
	return &labeler{
		p:         p,
		labels:    make([]string, p.Index.Len()),
		known:     make([]bool, p.Index.Len()),
		unknown:   make(map[unknownKey]string),
		unmatched: newHeavyHitters(1024),
	}
}

// namesSource reports whether err already names the source it came from:
// trackers' errors name each tracker ("tracker URL: ..."), a bindings
// file's its path.
func namesSource(err error, name string) bool {
	var pe *remote.PoolError
	var te *remote.TrackerError
	return errors.As(err, &pe) || errors.As(err, &te) || strings.Contains(err.Error(), name)
}

// ToleranceOption turns a tolerance as a user gives it (0: none) into
// Options.Tolerance (0: the default).
func ToleranceOption(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// Window returns the time window of the flows of an nfdump file: from its
// stat record, or from the flows themselves when the file has none.
func Window(ctx context.Context, path string) (first, last time.Time, err error) {
	r, err := nfcap.OpenFile(path, nfcap.ReaderOptions{})
	if err != nil {
		return first, last, err
	}
	defer r.Close()
	a := r.Appendix()
	if a.HasStat && a.Stat.NumFlows > 0 && a.Stat.FirstSeen > 0 && a.Stat.FirstSeen <= a.Stat.LastSeen &&
		a.Stat.LastSeen < 1<<62 {
		return a.Stat.First(), a.Stat.Last(), nil
	}
	var lo, hi uint64
	n := 0
	for f, err := range r.Flows() {
		if err != nil {
			return first, last, err
		}
		if n++; n%65536 == 0 && ctx.Err() != nil {
			return first, last, ctx.Err()
		}
		if lo == 0 || f.MsecFirst < lo {
			lo = f.MsecFirst
		}
		hi = max(hi, f.MsecLast)
	}
	if n == 0 {
		return first, last, nil
	}
	return time.UnixMilli(int64(lo)), time.UnixMilli(int64(hi)), nil
}

// Prepare reads the window of the file at path and builds the index of
// every source's bindings for it (widened by the tolerance).
func (j *Job) Prepare(ctx context.Context, path string) (*Plan, error) {
	first, last, err := Window(ctx, path)
	if err != nil {
		return nil, err
	}
	ib := tracker.NewIndexBuilder()
	tol := max(j.opts.Tolerance, 0) // negative: none
	from, to := first.Add(-tol), last.Add(tol)
	if first.IsZero() {
		from, to = time.Time{}, time.Time{}
	}
	for _, src := range j.opts.Sources {
		if err := src.Add(ctx, ib, from, to); err != nil {
			if namesSource(err, src.Name()) {
				return nil, err
			}
			return nil, fmt.Errorf("bindings from %s: %w", src.Name(), err)
		}
	}
	ix := ib.Build(tracker.IndexOptions{Tolerance: j.opts.Tolerance})
	p := &Plan{job: j, Path: path, First: first, Last: last, Index: ix}
	p.base = p.newLabeler()
	p.header = Summary{Path: path, First: first, Last: last, Bindings: ix.Len()}
	return p, nil
}

// Fork returns a plan over the same file and index with labelling state
// and counters of its own (none counted yet), for a goroutine that labels
// the file apart from this plan's users, such as a preview beside a pass
// that counts: the index is built once.
func (p *Plan) Fork() *Plan {
	q := &Plan{job: p.job, Path: p.Path, First: p.First, Last: p.Last, Index: p.Index, header: p.header}
	q.base = q.newLabeler()
	return q
}

// Label returns the label of a flow: the label template for the binding
// that matched, else, for a flow without a username, the unknown template
// (if any); an unmatched flow that has a username gets no label, so that
// it keeps it even when overwriting. It counts the match. It is not safe
// for concurrent use; see NewLabel.
func (p *Plan) Label(f *nfcap.Flow) (string, bool) { return p.base.label(f) }

// NewLabel returns another labelling function with its own caches and
// counters, for one more goroutine; Summary includes its counts.
func (p *Plan) NewLabel() nfcap.LabelFunc {
	l := p.newLabeler()
	p.mu.Lock()
	p.forks = append(p.forks, l)
	p.mu.Unlock()
	return l.label
}

func (l *labeler) label(f *nfcap.Flow) (string, bool) {
	opts := &l.p.job.opts
	l.counts.Flows++
	key := tracker.FlowKey{
		Proto: tracker.Proto(f.Proto),
		Src:   netip.AddrPortFrom(f.SrcAddr, f.SrcPort),
		Dst:   netip.AddrPortFrom(f.DstAddr, f.DstPort),
	}
	first, last := int64(f.MsecFirst), int64(f.MsecLast)
	m := l.p.Index.LookupMilli(key, first, last)
	if m.OK() {
		switch m.Kind {
		case tracker.MatchExact:
			l.counts.Exact++
		case tracker.MatchListener:
			l.counts.Listener++
		default:
			l.counts.Wildcard++
		}
		if l.known[m.Pos] {
			s := l.labels[m.Pos]
			return s, s != "" // a template can render empty ({container})
		}
		b := m.Binding
		o := b.Owner
		l.fields = LabelFields{Process: o.Name, PID: o.PID, User: o.User, UID: o.UID, Exe: o.Exe,
			Container: o.Container, Host: b.Host}
		usesService := opts.Label.Uses("service")
		if usesService {
			l.fields.Service = opts.Services.ForFlow(f.Proto, f.SrcPort, f.DstPort)
		}
		l.buf = opts.Label.Append(l.buf[:0], &l.fields)
		s := nfcap.CleanLabel(string(l.buf))
		if !usesService {
			l.labels[m.Pos], l.known[m.Pos] = s, true
		}
		return s, s != ""
	}
	l.counts.Unmatched++
	l.countUnmatched(f, first, last)
	if opts.Unknown == nil || f.Username != "" {
		// The unknown text only fills a missing username: what the
		// exporter or an earlier run wrote is worth more than "unknown".
		return "", false
	}
	svc := opts.Services.ForFlow(f.Proto, f.SrcPort, f.DstPort)
	if svc == "" {
		svc = "-"
	}
	host := ""
	if opts.Unknown.Uses("host") {
		if h, ok := l.p.Index.OwnerMilli(f.SrcAddr, first, last); ok {
			host = h
		} else if h, ok := l.p.Index.OwnerMilli(f.DstAddr, first, last); ok {
			host = h
		}
	}
	k := unknownKey{svc, host}
	if s, ok := l.unknown[k]; ok {
		return s, s != ""
	}
	l.fields = LabelFields{Service: svc, Host: host}
	l.buf = opts.Unknown.Append(l.buf[:0], &l.fields)
	s := nfcap.CleanLabel(string(l.buf))
	l.unknown[k] = s
	return s, s != ""
}

func (l *labeler) countUnmatched(f *nfcap.Flow, first, last int64) {
	var k endpointKey
	switch {
	case l.owns(0, f.SrcAddr, first, last):
		k = endpointKey{f.SrcAddr.As16(), f.SrcPort, f.Proto, true}
	case l.owns(1, f.DstAddr, first, last):
		k = endpointKey{f.DstAddr.As16(), f.DstPort, f.Proto, true}
	case f.SrcPort != 0 && f.SrcPort < f.DstPort:
		k = endpointKey{f.SrcAddr.As16(), f.SrcPort, f.Proto, false}
	default:
		k = endpointKey{f.DstAddr.As16(), f.DstPort, f.Proto, false}
	}
	if f.IsICMP() {
		k.port = 0
	}
	l.unmatched.add(k)
}

// owns reports whether a host owned a, remembering the last answer per
// side: consecutive flows often share their addresses.
func (l *labeler) owns(side int, a netip.Addr, first, last int64) bool {
	if a == l.lastAddr[side] && a.IsValid() {
		return l.lastOwned[side]
	}
	_, ok := l.p.Index.OwnerMilli(a, first, last)
	l.lastAddr[side], l.lastOwned[side] = a, ok
	return ok
}

// Effective returns the username nfdump will show for f after the rewrite
// (given its label), following the job's overwrite policy; "" means none.
// An existing username is replaced only by a label with ok set, which Label
// gives such a flow only for a binding that matched.
func (p *Plan) Effective(f *nfcap.Flow, label string, ok bool) string {
	if ok {
		label = nfcap.CleanLabel(label)
		ok = label != "" // the rewrite writes no empty username
	}
	switch {
	case f.Username != "" && (!p.job.opts.Overwrite || !ok):
		return f.Username
	case ok:
		return label
	}
	return ""
}

// Summary returns the counters so far, of every labelling function.
func (p *Plan) Summary() Summary {
	s := p.header
	p.mu.Lock()
	all := append([]*labeler{p.base}, p.forks...)
	p.mu.Unlock()
	unmatched := newHeavyHitters(1024)
	for _, l := range all {
		s.Flows += l.counts.Flows
		s.Exact += l.counts.Exact
		s.Listener += l.counts.Listener
		s.Wildcard += l.counts.Wildcard
		s.Unmatched += l.counts.Unmatched
		unmatched.merge(&l.unmatched)
	}
	s.TopUnmatched = top(&unmatched, p.job.opts.TopN)
	return s
}

func top(h *heavyHitters, n int) []Endpoint {
	eps := make([]Endpoint, 0, h.n)
	h.each(func(k endpointKey, c int64) {
		eps = append(eps, Endpoint{Proto: protoName(k.proto), Addr: netip.AddrFrom16(k.addr).Unmap(), Port: k.port, Local: k.local, Flows: c})
	})
	slices.SortFunc(eps, func(a, b Endpoint) int {
		if c := cmp.Compare(b.Flows, a.Flows); c != 0 {
			return c
		}
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		return cmp.Compare(a.Port, b.Port)
	})
	if len(eps) > n {
		eps = eps[:n]
	}
	return eps
}

func protoName(p uint8) string {
	switch p {
	case nfcap.ProtoTCP:
		return "tcp"
	case nfcap.ProtoUDP:
		return "udp"
	case nfcap.ProtoICMP:
		return "icmp"
	case nfcap.ProtoICMPv6:
		return "icmp6"
	}
	return fmt.Sprint(p)
}

// Run enriches the file at path in place (atomically) and returns what
// was done. progress, when set, gets (blocks done, blocks total).
func (j *Job) Run(ctx context.Context, path string, progress func(done, total int)) (Summary, error) {
	start := time.Now()
	p, err := j.Prepare(ctx, path)
	if err != nil {
		return Summary{Path: path, Error: err.Error()}, err
	}
	st, err := nfcap.RewriteFile(ctx, path, p.Label, nfcap.RewriteOptions{
		Overwrite: j.opts.Overwrite, Recompress: j.opts.Recompress, Compression: j.opts.Compression,
		Progress: progress, NewLabel: p.NewLabel,
	})
	s := p.Summary()
	s.Written = st
	s.Elapsed = time.Since(start)
	if err != nil {
		s.Error = err.Error()
		return s, err
	}
	// Debug: the caller prints the summary (a watcher's log would say it twice).
	j.log.Debug("enriched", "file", path, "flows", s.Flows, "matched", s.Matched(), "unmatched", s.Unmatched,
		"written", st.Labelled(), "elapsed", s.Elapsed)
	return s, nil
}

// DryRun labels every flow of the file at path without writing anything.
// fn, when set, is called for each flow with its label and the username
// nfdump would show after a real run ("" for none); returning false stops
// the calls (counting goes on).
func (j *Job) DryRun(ctx context.Context, path string, fn func(f *nfcap.Flow, username string) bool) (Summary, error) {
	start := time.Now()
	p, err := j.Prepare(ctx, path)
	if err != nil {
		return Summary{Path: path, Error: err.Error(), DryRun: true}, err
	}
	r, err := nfcap.OpenFile(path, nfcap.ReaderOptions{})
	if err != nil {
		return Summary{Path: path, Error: err.Error(), DryRun: true}, err
	}
	defer r.Close()
	n := 0
	for f, err := range r.Flows() {
		if err != nil {
			return Summary{Path: path, Error: err.Error(), DryRun: true}, err
		}
		if n++; n%65536 == 0 && ctx.Err() != nil {
			return Summary{Path: path, DryRun: true}, ctx.Err()
		}
		label, ok := p.Label(f)
		if fn != nil && !fn(f, p.Effective(f, label, ok)) {
			fn = nil
		}
	}
	s := p.Summary()
	s.DryRun = true
	s.Elapsed = time.Since(start)
	return s, nil
}
