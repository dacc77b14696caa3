package tui

// BenchmarkKeyFrame measures how long a key press takes to produce its
// next frame (Update, then View, in true colour at 160x48) with 10,000
// live bindings and the 5M-record benchmark file open in the preview.
// Besides ns/op (the mean) it reports the median and the 99th percentile
// in milliseconds; the goal is a median under 16 ms.
//
//	NETDUMPER_BENCH_DATA=/work/bench-data go test -run '^$' -bench KeyFrame ./tui/
//
// For the preview, "page" includes loading the rows that came into view
// (the command Update returns, run at once: decoding the block that holds
// them when it is not cached), so it is the time to the complete frame.

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/netdumper/netdumper/internal/enrich"
	"github.com/netdumper/netdumper/internal/fixtures"
)

// benchFile returns the 5M-record benchmark file, or skips.
func benchFile(b *testing.B) string {
	dir := os.Getenv("NETDUMPER_BENCH_DATA")
	if dir == "" {
		if root, err := fixtures.ModuleRoot(); err == nil {
			dir = filepath.Join(root, "bench", "data")
		}
	}
	p := filepath.Join(dir, "v9-bench-5000000.lz4.nf")
	if _, err := os.Stat(p); err != nil {
		b.Skipf("benchmark file missing (%v): make bench-data, or set NETDUMPER_BENCH_DATA", err)
	}
	return p
}

// benchModel returns a model showing 10,000 bindings, with the 5M file
// open and indexed in the preview.
func benchModel(b *testing.B, ctx context.Context) *Model {
	path := benchFile(b)
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.TrueColor)
	src := newFakeSource("local", genBindings(10_000))
	// The preview labels with NETDUMPER_BENCH_BINDINGS when set (e.g. the
	// 10,000 bindings of bench/mkbindings for this file), else with none.
	var esrc enrich.Source = noBindings{}
	if p := os.Getenv("NETDUMPER_BENCH_BINDINGS"); p != "" {
		esrc = enrich.NewBindingsFile(p)
	}
	m := New(ctx, Options{
		Dir: filepath.Dir(path), Sources: []BindingsSource{src}, Renderer: r, MinRefresh: -1,
		Now: func() time.Time { return testNow }, Location: time.UTC,
		Enrich: enrich.Options{Sources: []enrich.Source{esrc}},
	})
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 48})
	m.binds.refresh()
	if len(m.binds.rows) != 10_000 {
		b.Fatalf("%d rows", len(m.binds.rows))
	}
	start := time.Now()
	msg := m.preview.open(path)()
	m.Update(msg)
	if m.preview.ff == nil {
		b.Fatalf("preview: %v", m.preview.err)
	}
	m.preview.startIndex()() // the whole index pass, here
	m.Update(indexMsg{m.preview.gen})
	if !m.preview.prog.done || m.preview.prog.err != nil {
		b.Fatalf("index: %+v", m.preview.prog)
	}
	sum := m.preview.prog.summary
	b.Logf("opened and indexed %d records in %d blocks in %v (matched %d)", m.preview.nav.n, len(m.preview.ff.blocks),
		time.Since(start).Round(time.Millisecond), sum.Matched())
	return m
}

// frame sends one key and renders, running the command Update returns
// when it is a preview row load.
func frame(m *Model, k tea.KeyMsg) {
	_, cmd := m.Update(k)
	if cmd != nil && m.screen == screenPreview && m.preview.loading != [2]int{} {
		m.Update(cmd())
	}
	_ = m.View()
}

func BenchmarkKeyFrame(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := benchModel(b, ctx)
	defer m.preview.close()

	type step struct {
		screen screenID
		setup  []string
		keys   []string // cycled
	}
	for _, tc := range []struct {
		name string
		step
	}{
		{"bindings/move", step{screenBindings, nil, []string{"down"}}},
		{"bindings/page", step{screenBindings, []string{"g"}, []string{"pgdown", "pgdown", "pgdown", "pgup", "pgup", "pgup"}}},
		{"bindings/filter-keystroke", step{screenBindings, []string{"/"}, []string{"n", "g", "backspace", "backspace"}}},
		{"bindings/filtered-move", step{screenBindings, []string{"/", "p", "r", "o", "c", ":", "n", "enter"}, []string{"down"}}},
		{"bindings/sort", step{screenBindings, []string{"esc"}, []string{"s"}}},
		{"files/move", step{screenFiles, nil, []string{"down", "up"}}},
		{"preview/move", step{screenPreview, []string{"g"}, []string{"down"}}},
		{"preview/page", step{screenPreview, []string{"g"}, []string{"pgdown"}}},
		{"preview/jump-start-end", step{screenPreview, nil, []string{"G", "g"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m.screen = tc.screen
			for _, k := range tc.setup {
				frame(m, keyMsg(k))
			}
			keys := make([]tea.KeyMsg, len(tc.keys))
			for i, k := range tc.keys {
				keys[i] = keyMsg(k)
			}
			times := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				frame(m, keys[i%len(keys)])
				times = append(times, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(times)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(times[len(times)/2]), "median-ms")
			b.ReportMetric(ms(times[len(times)*99/100]), "p99-ms")
			if tc.name == "bindings/filter-keystroke" {
				frame(m, keyMsg("esc"))
			}
		})
	}
	// A jump to anywhere in the file (as a search hit lands): mostly a
	// block that is not cached, so this is the cost of decoding one.
	b.Run("preview/jump-random", func(b *testing.B) {
		m.screen = screenPreview
		s := m.preview
		times := make([]time.Duration, 0, b.N)
		x := uint64(88172645463325252)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			t0 := time.Now()
			s.nav.moveTo(int(x % uint64(s.nav.n)))
			if cmd := s.ensureRows(); cmd != nil {
				m.Update(cmd())
			}
			_ = m.View()
			times = append(times, time.Since(t0))
		}
		b.StopTimer()
		slices.Sort(times)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(ms(times[len(times)/2]), "median-ms")
		b.ReportMetric(ms(times[len(times)*99/100]), "p99-ms")
	})
}

// BenchmarkSearchMiss searches the 5M-record file for a text no record
// holds: the whole file is decoded, labelled and formatted.
func BenchmarkSearchMiss(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := benchModel(b, ctx)
	defer m.preview.close()
	s := m.preview
	pg, err := m.c.newPager(ctx, s.path)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		found, scanned, err := search(ctx, s.ff, pg, "no-such-text", 0, 1, s.nav.n)
		if err != nil || found >= 0 || scanned != s.nav.n {
			b.Fatalf("found %d, scanned %d, err %v", found, scanned, err)
		}
	}
	b.ReportMetric(float64(s.nav.n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mrecords/s")
}
