package nfcap

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/pierrec/lz4/v4"
)

// lz4RoundTrip compresses src with st, checks the block against the
// format's end rules, decodes it with pierrec/lz4 (an independent decoder)
// and wants src back. It returns the block.
func lz4RoundTrip(t testing.TB, st *lz4State, src []byte) []byte {
	t.Helper()
	comp := lz4Compress(nil, src, st)
	if len(comp) > lz4CompressBound(len(src)) {
		t.Fatalf("%d bytes compressed to %d, over the bound %d", len(src), len(comp), lz4CompressBound(len(src)))
	}
	lz4CheckBlockEnd(t, comp, len(src))
	got := make([]byte, len(src)+64)
	n, err := lz4.UncompressBlock(comp, got)
	if len(src) == 0 && err == nil && n == 0 {
		return comp
	}
	if err != nil {
		t.Fatalf("decoding the block of %d bytes: %v", len(src), err)
	}
	if !bytes.Equal(got[:n], src) {
		i := 0
		for i < n && i < len(src) && got[i] == src[i] {
			i++
		}
		t.Fatalf("round trip of %d bytes gave %d bytes, first difference at %d", len(src), n, i)
	}
	return comp
}

// lz4CheckBlockEnd walks the sequences of a block and checks the rules
// LZ4_decompress_safe relies on: the last sequence is literals only, and
// every match ends at least 5 bytes, and starts at least 12 bytes, before
// the end of the n decoded bytes.
func lz4CheckBlockEnd(t testing.TB, b []byte, n int) {
	t.Helper()
	pos, ip := 0, 0
	for ip < len(b) {
		tok := b[ip]
		ip++
		lit := int(tok >> 4)
		if lit == 15 {
			for ip < len(b) {
				c := b[ip]
				ip++
				lit += int(c)
				if c != 255 {
					break
				}
			}
		}
		ip += lit
		pos += lit
		if ip >= len(b) {
			if ip > len(b) || pos != n {
				t.Fatalf("last literals end at %d of %d (decoded %d of %d)", ip, len(b), pos, n)
			}
			return
		}
		ip += 2 // offset
		ml := int(tok&15) + lz4MinMatch
		if tok&15 == 15 {
			for ip < len(b) {
				c := b[ip]
				ip++
				ml += int(c)
				if c != 255 {
					break
				}
			}
		}
		if pos > n-lz4MFLimit || pos+ml > n-lz4LastLiterals {
			t.Fatalf("match at %d of length %d in %d bytes breaks the end rules", pos, ml, n)
		}
		pos += ml
	}
	t.Fatalf("block ends after a match (decoded %d of %d)", pos, n)
}

func TestLZ4CompressRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type tc struct {
		name string
		src  []byte
	}
	var cases []tc
	// Every short length around the end rules (12, 13 bytes), and the
	// length-field boundaries (15, 15+255).
	for _, n := range []int{0, 1, 4, 5, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 24, 25, 31, 32, 269, 270, 271, 1000} {
		cases = append(cases,
			tc{fmt.Sprintf("random/%d", n), lzoRandom(rng, n)},
			tc{fmt.Sprintf("zeros/%d", n), make([]byte, n)},
			tc{fmt.Sprintf("period3/%d", n), lzoPattern(rng, n, 3)},
		)
	}
	for _, n := range []int{4096, 65536, 1 << 20, 5 << 20} {
		cases = append(cases,
			tc{fmt.Sprintf("random/%d", n), lzoRandom(rng, n)},
			tc{fmt.Sprintf("zeros/%d", n), make([]byte, n)},
		)
	}
	for _, p := range []int{1, 2, 4, 5, 8, 15, 19, 100, 274, 4096, 65534, 65535, 65536, 70000} {
		cases = append(cases, tc{fmt.Sprintf("period/%d", p), lzoPattern(rng, 3*p+1000, p)})
	}
	// A single match at a given distance (up to and past the 65535 limit)
	// and of lengths around the length-field boundaries.
	for _, d := range []int{1, 2, 4, 8, 255, 256, 65534, 65535, 65536, 65537} {
		for _, l := range []int{4, 5, 18, 19, 20, 273, 274, 275, 600} {
			cases = append(cases, tc{fmt.Sprintf("dist%d/len%d", d, l), lzoAtDistance(rng, d, l)})
		}
	}
	for i := range 20 {
		var b []byte
		for len(b) < 200_000 {
			if len(b) > 64 && rng.IntN(2) == 0 {
				d := 1 + rng.IntN(min(len(b), 70000))
				l := 1 + rng.IntN(300)
				for range l {
					b = append(b, b[len(b)-d])
				}
			} else {
				b = append(b, lzoRandom(rng, rng.IntN(300))...)
			}
		}
		cases = append(cases, tc{fmt.Sprintf("mixed/%d", i), b})
	}
	for name, p := range lzoRealPayloads(t) {
		cases = append(cases, tc{"real/" + name, p})
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].name < cases[j].name })
	st := new(lz4State)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			comp := lz4RoundTrip(t, st, c.src)
			if len(c.src) >= 4096 && bytes.Count(c.src, c.src[:1]) == len(c.src) && len(comp) > len(c.src)/200+32 {
				t.Errorf("constant input of %d bytes compressed to %d", len(c.src), len(comp))
			}
			if again := lz4Compress(nil, c.src, new(lz4State)); !bytes.Equal(comp, again) {
				t.Errorf("reused state changed the output")
			}
		})
	}
}

// TestLZ4CompressSizeVsPierrec keeps the encoder honest on real flow
// blocks: its output may not be more than 5 % larger than pierrec/lz4's.
func TestLZ4CompressSizeVsPierrec(t *testing.T) {
	var c lz4.Compressor
	st := new(lz4State)
	var ours, theirs int
	for _, p := range lzoRealPayloads(t) {
		buf := make([]byte, lz4.CompressBlockBound(len(p)))
		n, err := c.CompressBlock(p, buf)
		if err != nil {
			t.Fatal(err)
		}
		theirs += n
		ours += len(lz4Compress(nil, p, st))
	}
	t.Logf("real flow blocks: ours %d bytes, pierrec/lz4 %d (%.3f)", ours, theirs, float64(ours)/float64(theirs))
	if float64(ours) > 1.05*float64(theirs) {
		t.Errorf("our LZ4 blocks are %d bytes, pierrec/lz4's %d: more than 5 %% larger", ours, theirs)
	}
}

func TestLZ4CompressAllocs(t *testing.T) {
	src := lzoPattern(rand.New(rand.NewPCG(1, 1)), 1<<20, 1000)
	st := new(lz4State)
	buf := make([]byte, 0, lz4CompressBound(len(src)))
	if a := testing.AllocsPerRun(5, func() { buf = lz4Compress(buf[:0], src, st) }); a != 0 {
		t.Errorf("lz4Compress allocates %v times with room to spare", a)
	}
}

// FuzzLZ4RoundTrip compresses arbitrary input and checks the block's end
// rules and that pierrec/lz4 decodes it back exactly. The committed corpus
// (testdata/fuzz/FuzzLZ4RoundTrip) holds slices of real flow blocks.
func FuzzLZ4RoundTrip(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("a"))
	f.Add(bytes.Repeat([]byte("abcd"), 100))
	f.Add(make([]byte, 70000))
	st := new(lz4State)
	f.Fuzz(func(t *testing.T, src []byte) {
		lz4RoundTrip(t, st, src)
	})
}

// BenchmarkLZ4Compress measures our encoder and pierrec/lz4's on real flow
// blocks (the benchmark file's, when there is one); MB/s is of input.
func BenchmarkLZ4Compress(b *testing.B) {
	payloads := lzoBenchPayloads(b)
	total := lzoTotal(payloads)
	b.Run("netdumper", func(b *testing.B) {
		st := new(lz4State)
		buf := make([]byte, 0, lz4CompressBound(MaxBlockSize))
		var comp int64
		b.SetBytes(total)
		b.ReportAllocs()
		for b.Loop() {
			comp = 0
			for _, p := range payloads {
				buf = lz4Compress(buf[:0], p, st)
				comp += int64(len(buf))
			}
		}
		b.ReportMetric(float64(total)/float64(comp), "ratio")
	})
	b.Run("pierrec", func(b *testing.B) {
		var c lz4.Compressor
		buf := make([]byte, lz4.CompressBlockBound(MaxBlockSize))
		var comp int64
		b.SetBytes(total)
		b.ReportAllocs()
		for b.Loop() {
			comp = 0
			for _, p := range payloads {
				n, err := c.CompressBlock(p, buf)
				if err != nil {
					b.Fatal(err)
				}
				comp += int64(n)
			}
		}
		b.ReportMetric(float64(total)/float64(comp), "ratio")
	})
}
