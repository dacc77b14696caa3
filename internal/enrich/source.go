package enrich

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/netdumper/netdumper/tracker"
)

// Source gives the binding history of one or more hosts for a window.
type Source interface {
	// Name identifies the source in messages: a path or a URL.
	Name() string
	// Add adds to ib every binding and address interval of the source that
	// overlaps [from, to].
	Add(ctx context.Context, ib *tracker.IndexBuilder, from, to time.Time) error
}

// BindingsFile is a Source backed by a bindings file (the JSON format of
// `netdumper bindings export`). The file is read once, on first use.
type BindingsFile struct {
	path  string
	once  sync.Once
	hosts []tracker.HostHistory
	err   error
}

// NewBindingsFile returns a Source reading path.
func NewBindingsFile(path string) *BindingsFile { return &BindingsFile{path: path} }

// Name returns the file path.
func (s *BindingsFile) Name() string { return s.path }

// Load reads and checks the file; errors name the line and field at fault.
func (s *BindingsFile) Load() error {
	s.once.Do(func() {
		f, err := os.Open(s.path)
		if err != nil {
			s.err = err
			return
		}
		defer f.Close()
		bf, err := tracker.ReadFile(f, s.path)
		if err != nil {
			s.err = err
			return
		}
		s.hosts = bf.Hosts
	})
	return s.err
}

// Add adds the intervals that overlap [from, to].
func (s *BindingsFile) Add(_ context.Context, ib *tracker.IndexBuilder, from, to time.Time) error {
	if err := s.Load(); err != nil {
		return err
	}
	for _, h := range s.hosts {
		for _, a := range h.Addrs {
			if overlaps(a.From, a.Until, from, to) {
				ib.AddAddr(h.Host, a)
			}
		}
		for _, b := range h.Bindings {
			if b.Covers(from, to, 0) {
				b.Host = h.Host
				ib.AddBinding(b)
			}
		}
	}
	return nil
}

func overlaps(f, u, from, to time.Time) bool {
	return (f.IsZero() || !f.After(to)) && (u.IsZero() || u.After(from))
}

// LocalStore is a Source backed by the tracker's state directory on this
// host. While `netdumper serve` runs it holds the store's lock; the source
// then asks the running daemon through Fallback.
type LocalStore struct {
	Dir string
	// Fallback, when set, gives a Source for a running daemon described by
	// the state directory's serve.json.
	Fallback func(ctx context.Context, info tracker.DaemonInfo) (Source, error)
	// LockTimeout bounds the wait for the store's lock (default 200 ms).
	LockTimeout time.Duration
}

// Name returns the state directory.
func (s *LocalStore) Name() string { return s.Dir }

// Add opens the store read-only for the duration of the call.
func (s *LocalStore) Add(ctx context.Context, ib *tracker.IndexBuilder, from, to time.Time) error {
	timeout := s.LockTimeout
	if timeout == 0 {
		timeout = 200 * time.Millisecond
	}
	st, err := tracker.OpenStore(s.Dir, tracker.StoreOptions{ReadOnly: true, LockTimeout: timeout})
	if errors.Is(err, tracker.ErrStateLocked) {
		info, ierr := tracker.ReadDaemonInfo(s.Dir)
		if ierr != nil || s.Fallback == nil {
			return fmt.Errorf("%w (the running netdumper serve holds it; it could not be asked: %v)", err, ierr)
		}
		src, ferr := s.Fallback(ctx, info)
		if ferr != nil {
			return fmt.Errorf("%w; asking the running daemon at %s: %w", err, info.API, ferr)
		}
		return src.Add(ctx, ib, from, to)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	return ib.AddHistory(ctx, st, from, to)
}
