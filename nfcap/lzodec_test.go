package nfcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	lzo "github.com/anchore/go-lzo"
)

// lzoDiff decodes stream with anchore/go-lzo and with lzoDecode, both into
// buffers of limit bytes, and fails unless they agree: both reject it, or
// both accept it with the same output. It returns lzoDecode's output.
func lzoDiff(t testing.TB, stream []byte, limit int) ([]byte, error) {
	t.Helper()
	a := make([]byte, limit)
	na, errA := lzo.Decompress(stream, a)
	b := make([]byte, limit)
	nb, errB := lzoDecode(b, stream)
	switch {
	case (errA == nil) != (errB == nil):
		t.Fatalf("decoders disagree on % x (limit %d): anchore/go-lzo %d, %v; lzoDecode %d, %v", stream[:min(len(stream), 32)], limit, na, errA, nb, errB)
	case errA == nil && (na != nb || !bytes.Equal(a[:na], b[:nb])):
		t.Fatalf("decoders give different output for % x: %d vs %d bytes", stream[:min(len(stream), 32)], na, nb)
	case errB != nil && (nb < 0 || nb > limit):
		t.Fatalf("lzoDecode reports %d bytes written on error, limit %d", nb, limit)
	}
	if errB != nil {
		return nil, errB
	}
	return b[:nb], nil
}

// lzoSynth builds random valid LZO1X streams that use every instruction
// form, including the ones our encoder never emits (M1 in both states, long
// lengths in every form, M4 with H set), together with the output they
// must decode to.
type lzoSynth struct {
	rng   *rand.Rand
	s     []byte // stream
	out   []byte // expected output
	state int    // literals copied by the last instruction (4 = 4 or more)
	sPos  int    // index in s of the last match's SS byte
}

func (g *lzoSynth) literals(n int) {
	for range n {
		// A small alphabet, so later matches are plausible data.
		g.out = append(g.out, "flow\x00\x01\xff"[g.rng.IntN(7)])
		g.s = append(g.s, g.out[len(g.out)-1])
	}
}

func (g *lzoSynth) ext(t int) {
	for t > 255 {
		g.s = append(g.s, 0)
		t -= 255
	}
	g.s = append(g.s, byte(t))
}

func (g *lzoSynth) copyMatch(dist, n int) {
	for range n {
		g.out = append(g.out, g.out[len(g.out)-dist])
	}
}

// randLen returns a length in [lo, hi], often small, sometimes long.
func (g *lzoSynth) randLen(lo, hi int) int {
	if g.rng.IntN(8) == 0 {
		return lo + g.rng.IntN(hi-lo+1)
	}
	return lo + g.rng.IntN(min(hi, lo+12)-lo+1)
}

func (g *lzoSynth) literalRun() {
	n := g.randLen(4, 1200)
	if n <= 18 {
		g.s = append(g.s, byte(n-3))
	} else {
		g.s = append(g.s, 0)
		g.ext(n - 18)
	}
	g.literals(n)
	g.state = 4
}

// match emits one match instruction that fits the current history, or
// returns false when none does.
func (g *lzoSynth) match() bool {
	have := len(g.out)
	if have == 0 {
		return false
	}
	switch g.rng.IntN(5) {
	case 0: // M1
		if g.state == 0 {
			return false
		}
		d := g.rng.IntN(1024)
		dist, n := d+1, 2
		if g.state == 4 {
			dist, n = d+2049, 3
		}
		if dist > have {
			return false
		}
		g.s = append(g.s, byte(d&3)<<2, byte(d>>2))
		g.sPos = len(g.s) - 2
		g.copyMatch(dist, n)
	case 1: // M2
		d := g.rng.IntN(min(have, 2048))
		n := 3 + g.rng.IntN(6)
		g.s = append(g.s, byte((n-1)<<5|(d&7)<<2), byte(d>>3))
		g.sPos = len(g.s) - 2
		g.copyMatch(d+1, n)
	case 2, 3: // M3
		d := g.rng.IntN(min(have, 16384))
		n := g.randLen(3, 600)
		if n <= 33 {
			g.s = append(g.s, byte(32|(n-2)))
		} else {
			g.s = append(g.s, 32)
			g.ext(n - 33)
		}
		g.s = binary.LittleEndian.AppendUint16(g.s, uint16(d<<2))
		g.sPos = len(g.s) - 2
		g.copyMatch(d+1, n)
	default: // M4
		if have <= 16384 {
			return false
		}
		dist := 16385 + g.rng.IntN(min(have, 49151)-16384)
		d := dist - 16384
		n := g.randLen(3, 600)
		h := byte(d>>11) & 8
		if n <= 9 {
			g.s = append(g.s, 16|h|byte(n-2))
		} else {
			g.s = append(g.s, 16|h)
			g.ext(n - 9)
		}
		g.s = binary.LittleEndian.AppendUint16(g.s, uint16(d<<2))
		g.sPos = len(g.s) - 2
		g.copyMatch(dist, n)
	}
	lits := g.rng.IntN(4)
	g.s[g.sPos] |= byte(lits)
	g.literals(lits)
	g.state = lits
	return true
}

// lzoSynthStream returns a random valid stream of about size output bytes
// and its decoded form.
func lzoSynthStream(rng *rand.Rand, size int) (stream, plain []byte) {
	g := &lzoSynth{rng: rng}
	if rng.IntN(2) == 0 {
		n := 1 + rng.IntN(238)
		g.s = append(g.s, byte(17+n))
		g.literals(n)
		g.state = min(n, 4)
	}
	for len(g.out) < size {
		if g.state == 0 && rng.IntN(3) == 0 || len(g.out) == 0 {
			if g.state != 0 {
				// Only a match can follow here and there is no history.
				break
			}
			g.literalRun()
			continue
		}
		g.match()
	}
	g.s = append(g.s, 0x11, 0, 0)
	return g.s, g.out
}

func TestLZODecodeSynthetic(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for i := range 400 {
		size := []int{0, 1, 10, 300, 5000, 70000, 200000}[i%7]
		stream, plain := lzoSynthStream(rng, size)
		t.Run(fmt.Sprintf("%d-%d", i, size), func(t *testing.T) {
			got, err := lzoDiff(t, stream, len(plain)+rng.IntN(20))
			if err != nil {
				t.Fatalf("valid stream rejected: %v", err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("decoded %d bytes, want %d", len(got), len(plain))
			}
			// One byte short of room must fail in both.
			if len(plain) > 0 {
				if _, err := lzoDiff(t, stream, len(plain)-1); !errors.Is(err, errLZOOutputOverrun) && !errors.Is(err, errLZOLengthOverflow) {
					t.Fatalf("output one byte too small: got %v, want output overrun", err)
				}
			}
		})
	}
}

// lzoStoredPayloads returns the stored (compressed) payload of every block
// of an nfdump file, appendix included, parsed straight from the bytes.
func lzoStoredPayloads(t testing.TB, name string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	n := int(le.Uint32(raw[36:])) + int(le.Uint16(raw[18:]))
	var out [][]byte
	off := HeaderSize
	for range n {
		size := int(le.Uint32(raw[off+4:]))
		out = append(out, raw[off+BlockHeaderSize:off+BlockHeaderSize+size])
		off += BlockHeaderSize + size
	}
	return out
}

func TestLZODecodeReal(t *testing.T) {
	var streams [][]byte
	for _, f := range lzoFixtureFiles(t) {
		if filepath.Ext(filepath.Base(f[:len(f)-3])) == ".lzo" {
			streams = append(streams, lzoStoredPayloads(t, f)...) // nfdump/nfcapd's LZO1X-1
		}
	}
	for _, p := range lzoRealPayloads(t) {
		streams = append(streams, lzoCompress(nil, p, nil)) // ours
	}
	if len(streams) < 10 {
		t.Fatalf("only %d real streams", len(streams))
	}
	for i, s := range streams {
		if _, err := lzoDiff(t, s, MaxBlockSize); err != nil {
			t.Errorf("stream %d: %v", i, err)
		}
	}
}

func TestLZODecodeBadInput(t *testing.T) {
	eos := []byte{0x11, 0, 0}
	tests := []struct {
		name   string
		stream []byte
		limit  int
		want   error
	}{
		{"empty", nil, 100, errLZOInputOverrun},
		{"two bytes", []byte{0x11, 0}, 100, errLZOInputOverrun},
		{"no end", []byte{20, 'a', 'b', 'c'}, 100, errLZOInputOverrun},
		{"first literals past input", []byte{30, 'a', 'b'}, 100, errLZOInputOverrun},
		{"first literals past output", append(append([]byte{27}, "0123456789"...), eos...), 9, errLZOOutputOverrun},
		{"match before any output", []byte{0x12, 4, 0, 0x11, 0, 0}, 100, errLZOLookbehind},
		{"match too far back", append([]byte{21, 'a', 'b', 'c', 'd', 0x20 | 3, 4 << 2, 0}, eos...), 100, errLZOLookbehind},
		{"M1 too far back", append([]byte{18, 'a', 0x00, 1}, eos...), 100, errLZOLookbehind},
		{"trailing input", append([]byte{18, 'a'}, 0x11, 0, 0, 0), 100, errLZOTrailingInput},
		{"end with ext length", []byte{18, 'a', 0x10, 1, 0, 0}, 100, errLZOBadEnd},
		{"end with length 4", []byte{18, 'a', 0x12, 0, 0}, 100, errLZOBadEnd},
		{"ext runs off the end", []byte{0, 0, 0, 0}, 10000, errLZOInputOverrun},
		{"ext longer than output", append([]byte{0}, make([]byte, 100)...), 1000, errLZOLengthOverflow},
		{"long literal past input", []byte{0, 200, 'a'}, 1000, errLZOInputOverrun},
		{"match past output", append([]byte{18, 'a', 0x20 | 30, 0, 0}, eos...), 10, errLZOOutputOverrun},
		{"M3 cut in offset", []byte{18, 'a', 0x20 | 3, 0}, 100, errLZOInputOverrun},
		{"M2 cut", []byte{18, 'a', 0x40}, 100, errLZOInputOverrun},
		{"literals after match cut", []byte{18, 'a', 0x40 | 3, 0, 'x'}, 100, errLZOInputOverrun},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := lzoDiff(t, tt.stream, tt.limit)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestLZODecodeTruncated cuts valid streams at every length: every prefix
// must be rejected by both decoders, without panics.
func TestLZODecodeTruncated(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	var streams [][]byte
	for range 10 {
		s, _ := lzoSynthStream(rng, 2000)
		streams = append(streams, s)
	}
	streams = append(streams, lzoCompress(nil, lzoPattern(rng, 5000, 300), nil))
	for i, s := range streams {
		for n := range len(s) {
			if _, err := lzoDiff(t, s[:n], 8192); err == nil {
				t.Fatalf("stream %d cut to %d of %d bytes was accepted", i, n, len(s))
			}
		}
	}
}

func TestLZODecompressLimits(t *testing.T) {
	src := lzoPattern(rand.New(rand.NewPCG(15, 16)), 100000, 777)
	got, err := lzoDecompress(nil, lzoCompress(nil, src, nil))
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("round trip: %d bytes, %v", len(got), err)
	}
	// A stream that expands past MaxBlockSize is ErrTooLarge.
	big := lzoCompress(nil, make([]byte, MaxBlockSize+1), nil)
	if _, err := lzoDecompress(nil, big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized payload: got %v, want ErrTooLarge", err)
	}
	if _, err := lzoDecompress(nil, []byte{0x12, 4, 0, 0x11, 0, 0}); err == nil {
		t.Errorf("corrupt stream accepted")
	}
}

// FuzzLZODecompress feeds arbitrary bytes to both decoders and requires
// the same verdict and output, and no panic.
func FuzzLZODecompress(f *testing.F) {
	rng := rand.New(rand.NewPCG(17, 18))
	for _, size := range []int{0, 50, 3000} {
		s, p := lzoSynthStream(rng, size)
		f.Add(s, uint16(len(p)))
	}
	f.Add(lzoCompress(nil, []byte("flow flow flow flow flow flow"), nil), uint16(100))
	f.Add([]byte{0, 0, 0, 1, 0x11, 0, 0}, uint16(1000))
	f.Fuzz(func(t *testing.T, stream []byte, limit uint16) {
		lzoDiff(t, stream, int(limit))
	})
}

// BenchmarkLZODecode compares anchore/go-lzo with lzoDecode on real flow
// blocks compressed by lzoCompress and, when the benchmark file is an LZO
// file, on its own blocks (nfdump's LZO1X-1). MB/s is of output.
func BenchmarkLZODecode(b *testing.B) {
	payloads := lzoBenchPayloads(b)
	sets := map[string][][]byte{}
	for _, p := range payloads {
		sets["ours"] = append(sets["ours"], lzoCompress(nil, p, nil))
	}
	if f := lzoBenchFile(); f != "" && bytes.Contains([]byte(filepath.Base(f)), []byte(".lzo")) {
		sets["file"] = lzoStoredPayloads(b, f)
	}
	dst := make([]byte, MaxBlockSize)
	for name, streams := range sets {
		var total int64
		for _, s := range streams {
			n, err := lzoDecode(dst, s)
			if err != nil {
				b.Fatal(err)
			}
			total += int64(n)
		}
		b.Run(name+"/anchore", func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				for _, s := range streams {
					if _, err := lzo.Decompress(s, dst); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(name+"/fast", func(b *testing.B) {
			b.SetBytes(total)
			b.ReportAllocs()
			for b.Loop() {
				for _, s := range streams {
					if _, err := lzoDecode(dst, s); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
