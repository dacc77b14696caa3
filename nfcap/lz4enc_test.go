package nfcap

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
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
	if size, ok := lz4PlainSize(comp); len(src) > 0 && (!ok || size != len(src)) {
		t.Fatalf("lz4PlainSize of the block of %d bytes: %d, %v", len(src), size, ok)
	}
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
	// readLen completes a token's 4-bit length with its extension bytes.
	readLen := func(n int) int {
		for n >= 15 && ip < len(b) {
			c := b[ip]
			ip++
			n += int(c)
			if c != 255 {
				break
			}
		}
		return n
	}
	for ip < len(b) {
		tok := b[ip]
		ip++
		lit := readLen(int(tok >> 4))
		ip += lit
		pos += lit
		if ip >= len(b) {
			if ip > len(b) || pos != n {
				t.Fatalf("last literals end at %d of %d (decoded %d of %d)", ip, len(b), pos, n)
			}
			return
		}
		ip += 2 // offset
		ml := readLen(int(tok&15)) + lz4MinMatch
		if pos > n-lz4MFLimit || pos+ml > n-lz4LastLiterals {
			t.Fatalf("match at %d of length %d in %d bytes breaks the end rules", pos, ml, n)
		}
		pos += ml
	}
	t.Fatalf("block ends after a match (decoded %d of %d)", pos, n)
}

func TestLZ4CompressRoundTrip(t *testing.T) {
	cases := codecCases(t, rand.New(rand.NewPCG(3, 4)), codecLimits{
		// Around the end rules (12, 13 bytes) and the length-field
		// boundaries (15, 15+255).
		short:   []int{0, 1, 4, 5, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 24, 25, 31, 32, 269, 270, 271, 1000},
		periods: []int{1, 2, 4, 5, 8, 15, 19, 100, 274, 4096, 65534, 65535, 65536, 70000},
		// Up to and past the 65535 offset limit.
		dists:   []int{1, 2, 4, 8, 255, 256, 65534, 65535, 65536, 65537},
		lens:    []int{4, 5, 18, 19, 20, 273, 274, 275, 600},
		maxDist: 70000,
	})
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

// TestLZ4DecompressLimits: a block that expands past MaxBlockSize is
// ErrTooLarge; a damaged or truncated one is not.
func TestLZ4DecompressLimits(t *testing.T) {
	for _, n := range []int{MaxBlockSize + 1, 2 * MaxBlockSize} {
		big := lz4Compress(nil, make([]byte, n), new(lz4State))
		_, err := lz4Decompress(nil, big)
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), strconv.Itoa(n)) {
			t.Errorf("%d bytes: got %v, want ErrTooLarge naming the size", n, err)
		}
	}
	exact := lz4Compress(nil, make([]byte, MaxBlockSize), new(lz4State))
	if got, err := lz4Decompress(nil, exact); err != nil || len(got) != MaxBlockSize {
		t.Errorf("a block of exactly MaxBlockSize: %d bytes, %v", len(got), err)
	}
	src := lzoPattern(rand.New(rand.NewPCG(3, 4)), 200000, 777)
	comp := lz4Compress(nil, src, new(lz4State))
	for name, bad := range map[string][]byte{
		"truncated":      comp[:len(comp)/2],
		"offset too far": append([]byte{0x10, 'a', 0xff, 0xff, 0x50}, "abcde"...),
		"match past end": append(append([]byte(nil), comp[:len(comp)-6]...), 0x0f, 1, 0),
	} {
		_, err := lz4Decompress(nil, bad)
		if err == nil || errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: got %v, want an error that is not ErrTooLarge", name, err)
		}
	}
}

// FuzzLZ4PlainSize: on any input lz4PlainSize stops without a panic, and
// for a block pierrec/lz4 decodes it gives the decoded size.
func FuzzLZ4PlainSize(f *testing.F) {
	st := new(lz4State)
	f.Add(lz4Compress(nil, []byte("hello hello hello hello hello"), st))
	f.Add(lz4Compress(nil, make([]byte, 1000), st))
	f.Add([]byte{0xf0, 0xff, 0xff})
	f.Add([]byte{0x1f, 'a', 1, 0, 0xff, 0x10})
	buf := make([]byte, 1<<20)
	f.Fuzz(func(t *testing.T, src []byte) {
		size, ok := lz4PlainSize(src)
		n, err := lz4.UncompressBlock(src, buf)
		if err == nil && len(src) > 0 && (!ok || size != n) {
			t.Fatalf("pierrec decodes %d bytes; lz4PlainSize says %d, %v", n, size, ok)
		}
	})
}
