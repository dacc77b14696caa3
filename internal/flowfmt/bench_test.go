package flowfmt

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/netdumper/netdumper/nfcap"
)

// benchFlows is a realistic mix: IPv4 and IPv6 TCP/UDP flows, half with a
// username, times close together (as in a collector file).
func benchFlows(b *testing.B) []*nfcap.Flow {
	r := rand.New(rand.NewPCG(3, 3))
	flows := make([]*nfcap.Flow, 1024)
	for i := range flows {
		s := randFlow(r)
		s.f.MsecFirst = 1700000000000 + uint64(i)*37
		s.f.MsecLast = s.f.MsecFirst + uint64(r.IntN(60000))
		flows[i] = decodeSynth(b, &s)
	}
	return flows
}

func BenchmarkAppendRecord(b *testing.B) {
	flows := benchFlows(b)
	for _, spec := range []string{"fmt:%line %uname", "line", "extended", "csv", "json"} {
		b.Run(spec, func(b *testing.B) {
			fm := MustParse(spec, Options{Location: time.UTC})
			buf := make([]byte, 0, 1<<20)
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				buf = fm.AppendRecord(buf[:0], flows[n%len(flows)])
				n++
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}
