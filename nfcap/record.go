package nfcap

import (
	"encoding/binary"
)

// Record types found inside type-3 blocks (src/lib/id.h in nfdump 1.7.1).
const (
	RecordTypeCommonV0     = 1
	RecordTypeExtensionMap = 2
	RecordTypePortHisto    = 3
	RecordTypeBppHisto     = 4
	RecordTypeLegacy1      = 5
	RecordTypeLegacy2      = 6
	RecordTypeExporterInfo = 7
	RecordTypeExporterStat = 8
	RecordTypeSamplerV0    = 9
	RecordTypeCommon       = 10
	RecordTypeV3           = 11 // the flow record
	RecordTypeNbar         = 12
	RecordTypeIfName       = 13
	RecordTypeVrfName      = 14
	RecordTypeSampler      = 15
	RecordTypeIdent        = 0x8001 // appendix only
	RecordTypeStat         = 0x8002 // appendix only
)

// RecordHeaderSize is the size of the type/size header of every record.
const RecordHeaderSize = 4

// Record is one record of a data block, undecoded.
type Record struct {
	// Type is the record type (RecordTypeV3 for flows).
	Type uint16
	// Data is the whole record, header included. It aliases the block
	// buffer and is valid only until the reader moves to the next block.
	Data []byte
	// Block is the 0-based index of the data block that holds the record.
	Block int
	// BlockOffset is the file offset of that block's header.
	BlockOffset int64
	// Offset is the byte offset of the record in the block's plain payload.
	Offset int
}

// walkRecords checks the framing of the n records in a type-3 payload and
// calls fn for each. It returns an error wrapping ErrCorrupt, with the
// payload offset of the fault, when a record size is below 4, a record runs
// past the payload, or bytes are left over after n records.
func walkRecords(payload []byte, n uint32, fn func(off int, rec []byte) error) (int, error) {
	off := 0
	for i := uint32(0); i < n; i++ {
		if len(payload)-off < RecordHeaderSize {
			return off, errf(ErrCorrupt, "record %d of %d: header runs past the end of the block (%d bytes left)", i+1, n, len(payload)-off)
		}
		size := int(binary.LittleEndian.Uint16(payload[off+2:]))
		if size < RecordHeaderSize {
			return off, errf(ErrCorrupt, "record %d of %d: size %d is below 4", i+1, n, size)
		}
		if size > len(payload)-off {
			return off, errf(ErrCorrupt, "record %d of %d: size %d runs past the end of the block (%d bytes left)", i+1, n, size, len(payload)-off)
		}
		if fn != nil {
			if err := fn(off, payload[off:off+size]); err != nil {
				return off, err
			}
		}
		off += size
	}
	if off != len(payload) {
		return off, &trailingError{errf(ErrCorrupt, "block announces %d records that end at %d, but its payload is %d bytes", n, off, len(payload))}
	}
	return off, nil
}

// trailingError is the fault of a payload longer than its records: they
// are all whole, and nfdump reads them and goes on to the next block.
type trailingError struct{ error }

func (e *trailingError) Unwrap() error { return e.error }
