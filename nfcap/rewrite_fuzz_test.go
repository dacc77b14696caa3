package nfcap_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"testing"

	"github.com/netdumper/netdumper/nfcap"
)

// memAt is an in-memory io.WriterAt.
type memAt struct{ b []byte }

func (m *memAt) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	copy(m.b[off:], p)
	return len(p), nil
}

// blockRecords lists the blocks of a file: type-3 blocks as their
// records, other blocks as one entry holding the whole payload.
func blockRecords(t *testing.T, file []byte) (recs [][]byte, other [][]byte, app [][]byte) {
	t.Helper()
	r, err := nfcap.NewReader(bytes.NewReader(file), int64(len(file)), nfcap.ReaderOptions{ReadAhead: -1})
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	defer r.Close()
	for {
		b, err := r.NextBlock()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		if b.Header.Type != nfcap.BlockTypeData {
			other = append(other, bytes.Clone(b.Data))
			continue
		}
		off := 0
		for i := uint32(0); i < b.Header.NumRecords; i++ {
			size := int(binary.LittleEndian.Uint16(b.Data[off+2:]))
			recs = append(recs, bytes.Clone(b.Data[off:off+size]))
			off += size
		}
	}
	return recs, other, r.Appendix().Records
}

// FuzzRewrite rewrites arbitrary files: when the rewrite succeeds, every
// record must come out in order, byte for byte except for the username.
func FuzzRewrite(f *testing.F) {
	for _, name := range []string{"softflowd-ipfix.none.nf", "softflowd-v9.lzo.nf"} {
		f.Add(loadFixture(f, name), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		r, err := nfcap.NewReader(bytes.NewReader(data), int64(len(data)), nfcap.ReaderOptions{})
		if err != nil {
			return
		}
		defer r.Close()
		n := 0
		label := func(*nfcap.Flow) (string, bool) {
			n++
			return "p", n%2 == 0
		}
		out := &memAt{}
		_, err = nfcap.Rewrite(context.Background(), r, out, label, nfcap.RewriteOptions{
			Overwrite: mode&1 != 0, Placeholder: map[bool]string{true: "ph"}[mode&2 != 0], Workers: 1,
			Recompress: mode&4 != 0, Compression: nfcap.Compression(mode >> 3 % 4),
		})
		if err != nil {
			return
		}
		ir, io2, ia := blockRecords(t, data)
		or, oo, oa := blockRecords(t, out.b)
		if len(ir) != len(or) || len(io2) != len(oo) || len(ia) != len(oa) {
			t.Fatalf("records %d -> %d, other blocks %d -> %d, appendix %d -> %d", len(ir), len(or), len(io2), len(oo), len(ia), len(oa))
		}
		for i := range io2 {
			if !bytes.Equal(io2[i], oo[i]) {
				t.Fatalf("block %d of another type changed", i)
			}
		}
		for i := range ia {
			if !bytes.Equal(ia[i], oa[i]) {
				t.Fatalf("appendix record %d changed", i)
			}
		}
		for i := range ir {
			a, b := ir[i], or[i]
			if bytes.Equal(a, b) {
				continue
			}
			if binary.LittleEndian.Uint16(a) != nfcap.RecordTypeV3 {
				t.Fatalf("record %d (type %d) changed", i, binary.LittleEndian.Uint16(a))
			}
			ra, ua := withoutUser(a)
			rb, ub := withoutUser(b)
			if !bytes.Equal(ra, rb) {
				t.Fatalf("record %d: elements other than the username changed:\n%x\n%x", i, a, b)
			}
			if ub == nil || (ua != nil && len(ua) != len(ub)) {
				t.Fatalf("record %d: username element %x -> %x", i, ua, ub)
			}
		}
	})
}
