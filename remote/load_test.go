package remote

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/netdumper/netdumper/tracker"
)

// TestManyStreamsNoLeak opens 200 event streams and queries snapshots
// meanwhile; once the clients leave, the goroutine count returns to what
// it was. (Figures: bench/remote-load.sh.)
func TestManyStreamsNoLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("200 streams")
	}
	tt := webTracker(t, tracker.Options{})
	ts := startServer(t, ServerOptions{Source: tt, MaxStreams: 250})
	time.Sleep(50 * time.Millisecond)
	runtime.GC()
	before := runtime.NumGoroutine()

	const n = 200
	ctx, cancel := context.WithCancel(context.Background())
	c := newClient(t, ts.URL, ClientOptions{})
	since := tt.Current().Seq
	var wg sync.WaitGroup
	got := make(chan int, n)
	var ready sync.WaitGroup
	ready.Add(n)
	for range n {
		wg.Go(func() {
			st, err := c.Events(ctx, since)
			ready.Done()
			if err != nil {
				t.Errorf("Events: %v", err)
				return
			}
			defer st.Close()
			k := 0
			for range 3 {
				if _, err := st.Next(); err != nil {
					break
				}
				k++
			}
			got <- k
		})
	}
	ready.Wait()
	for i := range 3 {
		tt.step(t, addrs("192.0.2.10"), listen(fmt.Sprintf("0.0.0.0:%d", 9000+i), uint64(900+i), proc(9, "x")))
		if _, err := c.Bindings(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	cancel()
	close(got)
	for k := range got {
		if k != 3 {
			t.Errorf("a stream got %d events, want 3", k)
		}
	}
	c.CloseIdleConnections()
	waitFor(t, "goroutines to return to their count before the streams", 10*time.Second, func() bool {
		runtime.GC()
		return runtime.NumGoroutine() <= before+2
	})
	if s := tt.Stats(); s.Subscribers != 0 {
		t.Errorf("%d subscribers left", s.Subscribers)
	}
}
