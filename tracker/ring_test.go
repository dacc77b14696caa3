package tracker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// bindN scans n times, adding one listener per scan: one event each.
func bindN(t *testing.T, tr *Tracker, fs *fakeScanner, from, n int) {
	t.Helper()
	p := proc(1, 0, "a")
	var socks []Observed
	for i := 1; i < from+n; i++ {
		socks = append(socks, listen(fmt.Sprintf("0.0.0.0:%d", i), uint64(i), p))
		if i < from {
			continue
		}
		fs.set(at(float64(i)), nil, socks...)
		if err := tr.ScanOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEventsSinceRing(t *testing.T) {
	tr, fs := newTestTracker(t, "", Options{RingSize: 4})
	bindN(t, tr, fs, 1, 10)
	tests := []struct {
		since      uint64
		wantFirst  uint64
		wantN      int
		wantResync bool
	}{
		{since: 0, wantResync: true},
		{since: 5, wantResync: true},
		{since: 6, wantFirst: 7, wantN: 4},
		{since: 8, wantFirst: 9, wantN: 2},
		{since: 10, wantN: 0},
		{since: 11, wantResync: true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.since), func(t *testing.T) {
			got, err := tr.EventsSince(tc.since)
			if tc.wantResync {
				if !errors.Is(err, ErrResync) {
					t.Errorf("err = %v, want ErrResync", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.wantN || (tc.wantN > 0 && got[0].Seq != tc.wantFirst) {
				t.Errorf("got %d events from %v, want %d from %d", len(got), got, tc.wantN, tc.wantFirst)
			}
		})
	}
}

func TestSubscribeBacklogThenLive(t *testing.T) {
	tr, fs := newTestTracker(t, "", Options{})
	bindN(t, tr, fs, 1, 3)
	sub, err := tr.Subscribe(1, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	bindN(t, tr, fs, 4, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for want := uint64(2); want <= 5; want++ {
		e, err := sub.Next(ctx)
		if err != nil || e.Seq != want {
			t.Fatalf("Next = seq %d, %v; want %d", e.Seq, err, want)
		}
	}
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := sub.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next with nothing queued = %v, want the context's error", err)
	}
	if _, err := tr.Subscribe(999, 0); !errors.Is(err, ErrResync) || !strings.Contains(err.Error(), "new history") {
		t.Errorf("Subscribe from the future = %v, want ErrResync saying the history is new", err)
	}
}

// TestLargeBatchReachesCaughtUpSubscriber: one scan that brings more events
// than a subscriber's queue length (a busy host) does not drop a reader
// that has read everything before it; a reader that leaves more than its
// queue length unread is dropped at the next batch.
func TestLargeBatchReachesCaughtUpSubscriber(t *testing.T) {
	tr, fs := newTestTracker(t, "", Options{})
	reader, err := tr.Subscribe(0, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	idle, err := tr.Subscribe(0, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	p := proc(1, 0, "a")
	var socks []Observed
	next := 1
	for scan := 1; scan <= 3; scan++ {
		for range 10 { // 10 new listeners: 10 events in one batch
			socks = append(socks, listen(fmt.Sprintf("0.0.0.0:%d", next), uint64(next), p))
			next++
		}
		fs.set(at(float64(scan)), nil, socks...)
		if err := tr.ScanOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		batch, err := reader.NextBatch(ctx, nil)
		cancel()
		if err != nil || len(batch) != 10 || batch[9].Seq != uint64(10*scan) {
			t.Fatalf("scan %d: the caught-up reader got %d events, %v; want the 10 of the scan", scan, len(batch), err)
		}
	}
	if _, err := idle.Next(context.Background()); !errors.Is(err, ErrSlowSubscriber) {
		t.Errorf("a reader 20 events behind with a queue of 4: %v, want ErrSlowSubscriber", err)
	}
}

func TestSlowSubscriberIsDroppedWithoutBlocking(t *testing.T) {
	tr, fs := newTestTracker(t, "", Options{})
	slow, err := tr.Subscribe(0, 4)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := tr.Subscribe(0, 4)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	got := make(chan uint64, n)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var batch []Event
		for {
			var err error
			batch, err = fast.NextBatch(context.Background(), batch[:0])
			if err != nil {
				close(got)
				return
			}
			for _, e := range batch {
				got <- e.Seq
			}
		}
	}()
	// The slow subscriber never reads; scanning must go on regardless.
	// The fast one keeps up: wait for it between scans so that its
	// small queue is never the tracker's problem.
	p := proc(1, 0, "a")
	var socks []Observed
	for i := 1; i <= n; i++ {
		socks = append(socks, listen(fmt.Sprintf("0.0.0.0:%d", i), uint64(i), p))
		fs.set(at(float64(i)), nil, socks...)
		if err := tr.ScanOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if seq := <-got; seq != uint64(i) {
			t.Fatalf("fast subscriber got seq %d, want %d", seq, i)
		}
	}
	if _, err := slow.Next(context.Background()); !errors.Is(err, ErrSlowSubscriber) || !errors.Is(err, ErrResync) {
		t.Errorf("slow subscriber: %v, want ErrSlowSubscriber (ErrResync)", err)
	}
	if s := tr.Stats(); s.Subscribers != 1 || s.DroppedSubscribers != 1 {
		t.Errorf("stats: %d subscribers, %d dropped; want 1 and 1", s.Subscribers, s.DroppedSubscribers)
	}
	fast.Close()
	wg.Wait()
	if _, err := fast.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

func TestManySubscribers(t *testing.T) {
	tr, fs := newTestTracker(t, "", Options{})
	const subs, scans = 200, 30
	var wg sync.WaitGroup
	errs := make(chan error, subs)
	ready := make([]*Subscription, subs)
	for i := range ready {
		s, err := tr.Subscribe(0, scans)
		if err != nil {
			t.Fatal(err)
		}
		ready[i] = s
	}
	for _, s := range ready {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for want := uint64(1); want <= scans; want++ {
				e, err := s.Next(context.Background())
				if err != nil || e.Seq != want {
					errs <- fmt.Errorf("got seq %d (%v), want %d", e.Seq, err, want)
					return
				}
			}
		}()
	}
	bindN(t, tr, fs, 1, scans)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range ready {
		if _, err := s.Next(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("after the tracker closed: %v, want ErrClosed", err)
		}
	}
	if _, err := tr.Subscribe(0, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
}

func TestRunScansUntilCancelled(t *testing.T) {
	tr, fs := newTestTracker(t, "", Options{Interval: MinInterval, Clock: time.Now})
	fs.set(time.Time{}, nil, listen("0.0.0.0:22", 1, proc(1, 0, "sshd")))
	sub, err := tr.Subscribe(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	e, err := sub.Next(context.Background())
	if err != nil || e.Kind != EventBound {
		t.Fatalf("first event: %+v, %v", e, err)
	}
	if err := tr.Run(ctx); err == nil {
		t.Error("second Run: no error")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
	if s := tr.Stats(); s.Scans == 0 || s.Bindings != 1 {
		t.Errorf("stats: %+v", s)
	}
}

func TestScanErrorsAreCounted(t *testing.T) {
	tr, fs := newTestTracker(t, "", Options{})
	fs.err = errors.New("netlink: boom")
	if err := tr.ScanOnce(context.Background()); err == nil || tr.Stats().ScanErrors != 1 {
		t.Errorf("ScanOnce = %v, stats %+v", err, tr.Stats())
	}
}
