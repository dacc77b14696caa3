package nfcap_test

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/netdumper/netdumper/nfcap"
)

// FuzzReader feeds arbitrary files to the reader: it must never panic, and
// every failure must be a *FormatError wrapping one of the sentinels.
func FuzzReader(f *testing.F) {
	for _, name := range []string{"softflowd-v9.lzo.nf", "softflowd-ipfix.none.nf", "v9-alluser.bz2.nf"} {
		f.Add(loadFixture(f, name))
	}
	sentinels := []error{nfcap.ErrBadMagic, nfcap.ErrLegacyLayout, nfcap.ErrUnsupportedLayout, nfcap.ErrEncrypted,
		nfcap.ErrUnsupportedCompression, nfcap.ErrTruncated, nfcap.ErrCorrupt, nfcap.ErrTooLarge, nfcap.ErrDecompress}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, ra := range []int{-1, 1} {
			_, err := readAll(data, nfcap.ReaderOptions{Name: "fuzz.nf", ReadAhead: ra})
			if err == nil {
				continue
			}
			var fe *nfcap.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a *FormatError: %v", err)
			}
			known := false
			for _, s := range sentinels {
				known = known || errors.Is(err, s)
			}
			if !known {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
		}
	})
}

// FuzzDecodeFlow feeds arbitrary records to the V3 decoder.
func FuzzDecodeFlow(f *testing.F) {
	data := loadFixture(f, "softflowd-ipfix.none.nf")
	r, err := nfcap.NewReader(bytesReaderAt(data), int64(len(data)), nfcap.ReaderOptions{})
	if err != nil {
		f.Fatal(err)
	}
	n := 0
	for r.Next() && n < 4 {
		if rec := r.Record(); rec.Type == nfcap.RecordTypeV3 {
			f.Add(append([]byte(nil), rec.Data...))
			n++
		}
	}
	r.Close()
	f.Fuzz(func(t *testing.T, rec []byte) {
		var fl nfcap.Flow
		err := nfcap.DecodeFlow(rec, &fl)
		if err != nil {
			if !errors.Is(err, nfcap.ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		// A record that decodes must be self-consistent.
		if len(rec) < nfcap.V3HeaderSize || int(binary.LittleEndian.Uint16(rec[2:])) != len(rec) {
			t.Fatalf("accepted record with inconsistent size")
		}
	})
}

// FuzzDecodeFlowKey checks that the rewrite's partial decoder accepts and
// rejects exactly what DecodeFlow does, and agrees on what it decodes.
func FuzzDecodeFlowKey(f *testing.F) {
	data := loadFixture(f, "v9-alluser.bz2.nf")
	r, err := nfcap.NewReader(bytesReaderAt(data), int64(len(data)), nfcap.ReaderOptions{})
	if err != nil {
		f.Fatal(err)
	}
	n := 0
	for r.Next() && n < 4 {
		if rec := r.Record(); rec.Type == nfcap.RecordTypeV3 {
			f.Add(append([]byte(nil), rec.Data...))
			n++
		}
	}
	r.Close()
	f.Fuzz(func(t *testing.T, rec []byte) {
		if len(rec) >= 2 {
			rec[0], rec[1] = nfcap.RecordTypeV3, 0
		}
		var full, key nfcap.Flow
		errFull := nfcap.DecodeFlow(rec, &full)
		errKey := nfcap.DecodeFlowKeyForTest(rec, &key)
		if (errFull == nil) != (errKey == nil) {
			t.Fatalf("DecodeFlow: %v, decodeFlowKey: %v", errFull, errKey)
		}
		if errFull != nil {
			return
		}
		if full.SrcAddr != key.SrcAddr || full.DstAddr != key.DstAddr || full.SrcPort != key.SrcPort ||
			full.DstPort != key.DstPort || full.Proto != key.Proto || full.MsecFirst != key.MsecFirst ||
			full.MsecLast != key.MsecLast || full.Username != key.Username || full.Elements != key.Elements {
			t.Fatalf("partial decode differs:\n full %+v\n key  %+v", full, key)
		}
	})
}

// TestDecodeFlowKeyReuse decodes the keys of every record of real files
// into one Flow, as a rewrite worker does, and wants each to equal a key
// decoded into a fresh Flow: reusing a Flow clears only what the key
// decoder sets, so nothing may leak from one record into the next, even
// after a full DecodeFlow filled it.
func TestDecodeFlowKeyReuse(t *testing.T) {
	for _, name := range []string{"v9-mixed.lz4.nf", "ipfix-mixed.lz4.nf", "v9-alluser.bz2.nf", "softflowd-v9.lzo.nf"} {
		data := loadFixture(t, name)
		r, err := nfcap.NewReader(bytesReaderAt(data), int64(len(data)), nfcap.ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var reused nfcap.Flow
		n := 0
		for r.Next() {
			rec := r.Record()
			if rec.Type != nfcap.RecordTypeV3 {
				continue
			}
			if n%7 == 3 { // now and then a full decode, as DecodeFlow callers do
				if err := nfcap.DecodeFlow(rec.Data, &reused); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
			var fresh nfcap.Flow
			errR := nfcap.DecodeFlowKeyForTest(rec.Data, &reused)
			errF := nfcap.DecodeFlowKeyForTest(rec.Data, &fresh)
			if errR != nil || errF != nil {
				t.Fatalf("%s record %d: %v / %v", name, n, errR, errF)
			}
			if !reflect.DeepEqual(reused, fresh) {
				t.Fatalf("%s record %d: reused Flow differs:\n reused %+v\n fresh  %+v", name, n, reused, fresh)
			}
			n++
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		r.Close()
		if n < 10 {
			t.Fatalf("%s: only %d flow records", name, n)
		}
	}
}
