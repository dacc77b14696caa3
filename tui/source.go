package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/netdumper/netdumper/remote"
	"github.com/netdumper/netdumper/tracker"
)

// BindingsSource is where the Bindings screen gets its live data: an
// embedded tracker (TrackerSource) or the mirror of a remote tracker.
// Implementations must be safe for concurrent use; Wait is called by one
// goroutine at a time.
type BindingsSource interface {
	// Name identifies the source in the status line ("local", a URL).
	Name() string
	// Current returns the latest bindings, or nil before the first sync.
	// The View is shared and read-only; a source returns the same
	// pointer (or at least the same Bindings slice) while nothing
	// changed, so the TUI can skip work.
	Current() *tracker.View
	// Wait blocks until the bindings or the health may have changed, or
	// ctx ends (then it returns ctx's error). Spurious wake-ups are fine.
	Wait(ctx context.Context) error
	// Health describes the source's connection now.
	Health() Health
	// Closed returns the bindings that ended during [from, to], for the
	// "recently closed" view.
	Closed(ctx context.Context, from, to time.Time) ([]tracker.Binding, error)
}

// HealthState is the coarse state of a source.
type HealthState uint8

// Health states, from best to worst.
const (
	HealthOK         HealthState = iota // data is live
	HealthConnecting                    // no data yet
	HealthStale                         // data may be out of date (reconnecting, scans late)
	HealthDown                          // the source failed; data, if any, is old
)

// String returns "ok", "connecting", "stale" or "down".
func (h HealthState) String() string {
	switch h {
	case HealthOK:
		return "ok"
	case HealthConnecting:
		return "connecting"
	case HealthStale:
		return "stale"
	}
	return "down"
}

// Health is a source's state with a short human-readable detail
// ("scan 0.4s ago", "connection refused; retrying").
type Health struct {
	State  HealthState
	Detail string
}

// TrackerSource adapts a tracker.Tracker running in this process (the
// embedded local tracker) to BindingsSource. The caller runs and closes
// the tracker.
type TrackerSource struct {
	t        *tracker.Tracker
	name     string
	interval time.Duration
	now      func() time.Time

	mu  sync.Mutex // serialises Wait
	sub *tracker.Subscription
	buf []tracker.Event
}

// NewTrackerSource returns a source over t, named name in the status
// line. interval is the tracker's scan interval (0: the default), used to
// tell when scans are late.
func NewTrackerSource(t *tracker.Tracker, name string, interval time.Duration) *TrackerSource {
	if interval <= 0 {
		interval = tracker.DefaultInterval
	}
	return &TrackerSource{t: t, name: name, interval: interval, now: time.Now}
}

// Name implements BindingsSource.
func (s *TrackerSource) Name() string { return s.name }

// Current implements BindingsSource.
func (s *TrackerSource) Current() *tracker.View { return s.t.Current() }

// Wait implements BindingsSource: it returns after the next batch of
// events, after a resync, or after a few scan intervals at most (so that
// the health shown stays current).
func (s *TrackerSource) Wait(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sub == nil {
		sub, err := s.t.Subscribe(s.t.Current().Seq, 0)
		if err != nil {
			// The tracker is closed (or the view moved on): say so via
			// health, and do not spin.
			return sleepCtx(ctx, s.interval)
		}
		s.sub = sub
	}
	wctx, cancel := context.WithTimeout(ctx, 2*s.interval)
	defer cancel()
	var err error
	s.buf, err = s.sub.NextBatch(wctx, s.buf[:0])
	clear(s.buf)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return nil
	case errors.Is(err, tracker.ErrClosed):
		s.sub = nil
		return sleepCtx(ctx, s.interval)
	default: // ErrResync or a slow subscription: start over from Current
		s.sub.Close()
		s.sub = nil
		return nil
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Health implements BindingsSource from the tracker's counters.
func (s *TrackerSource) Health() Health {
	st := s.t.Stats()
	if st.Scans == 0 {
		if st.ScanErrors > 0 {
			return Health{HealthDown, count(st.ScanErrors, "scan", "scans") + " failed (see the log)"}
		}
		return Health{HealthConnecting, "first scan"}
	}
	age := s.now().Sub(st.LastScan)
	detail := fmt.Sprintf("%s, scan %s ago", count(st.Bindings, "binding", "bindings"), roundAge(age))
	if age > 3*s.interval+time.Second {
		if st.ScanErrors > 0 {
			return Health{HealthDown, fmt.Sprintf("scans failing (%s), last good %s ago", count(st.ScanErrors, "error", "errors"), roundAge(age))}
		}
		return Health{HealthStale, detail}
	}
	return Health{HealthOK, detail}
}

// roundAge formats an age for the status line: 0.4s, 12s, 3m5s.
func roundAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// Closed implements BindingsSource from the tracker's history.
func (s *TrackerSource) Closed(ctx context.Context, from, to time.Time) ([]tracker.Binding, error) {
	var out []tracker.Binding
	host := s.t.Host()
	err := s.t.History(ctx, from, to, func(b tracker.Binding) error {
		if !b.Until.IsZero() && !b.Until.Before(from) && !b.Until.After(to) {
			if b.Host == "" {
				b.Host = host
			}
			out = append(out, b)
			if len(out) >= maxClosed {
				return errStop
			}
		}
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return out, err
}

// maxClosed bounds the closed bindings one source contributes.
const maxClosed = 100_000

var errStop = errors.New("stop")

// MirrorSource adapts a remote.Mirror (a remote tracker's bindings, kept
// current by its event stream) to BindingsSource. The caller runs the
// mirror.
type MirrorSource struct {
	m    *remote.Mirror
	name string
	now  func() time.Time
}

// NewMirrorSource returns a source over m, named name in the status line
// (the tracker's URL when empty).
func NewMirrorSource(m *remote.Mirror, name string) *MirrorSource {
	if name == "" {
		name = m.Client().URL()
	}
	return &MirrorSource{m: m, name: name, now: time.Now}
}

// Name implements BindingsSource.
func (s *MirrorSource) Name() string { return s.name }

// Current implements BindingsSource.
func (s *MirrorSource) Current() *tracker.View { return s.m.Current() }

// Wait implements BindingsSource: it returns when the mirror changes, or
// after a few seconds (so the status line's ages stay current).
func (s *MirrorSource) Wait(ctx context.Context) error {
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case <-s.m.Updates():
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Health implements BindingsSource from the mirror's connection status.
func (s *MirrorSource) Health() Health {
	st := s.m.Status()
	v := s.m.Current()
	switch {
	case st.Connected:
		n := 0
		if v != nil {
			n = len(v.Bindings)
		}
		d := count(n, "binding", "bindings") + ", live"
		if st.Host != "" {
			d = st.Host + ": " + d
		}
		return Health{HealthOK, d}
	case st.Err != nil && v != nil:
		return Health{HealthStale, "reconnecting (" + s.errText(st.Err) + "); showing the last bindings"}
	case st.Err != nil:
		return Health{HealthDown, s.errText(st.Err) + "; retrying"}
	}
	return Health{HealthConnecting, "connecting"}
}

// errText is a connection error without the tracker's URL when the
// status line names the source by it already: a narrow line keeps the
// reason rather than the URL a second time.
func (s *MirrorSource) errText(err error) string {
	msg, u := err.Error(), s.m.Client().URL()
	if s.name == u && strings.HasPrefix(msg, u) {
		msg = strings.TrimPrefix(strings.TrimPrefix(msg, u), ": ")
	}
	return msg
}

// Closed implements BindingsSource from the tracker's history.
func (s *MirrorSource) Closed(ctx context.Context, from, to time.Time) ([]tracker.Binding, error) {
	var out []tracker.Binding
	err := s.m.Client().History(ctx, from, to, func(host string, _ *tracker.AddrInterval, b *tracker.Binding) error {
		if b == nil || b.Until.IsZero() || b.Until.Before(from) || b.Until.After(to) {
			return nil
		}
		c := *b
		if c.Host == "" {
			c.Host = host
		}
		out = append(out, c)
		if len(out) >= maxClosed {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return out, err
}
