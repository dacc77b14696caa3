package nfcap

import (
	"encoding/binary"
	"time"
)

// Sizes and limits of the layout-2 format.
const (
	// HeaderSize is the size of the layout-2 file header.
	HeaderSize = 40
	// BlockHeaderSize is the size of a data block header.
	BlockHeaderSize = 12
	// MaxBlockSize is the largest block payload (stored or uncompressed)
	// nfdump 1.7 reads; larger blocks are rejected.
	MaxBlockSize = 5 * 1024 * 1024
	// WriteBlockSize is the largest uncompressed payload nfdump 1.7.1 writes,
	// and the largest this package writes.
	WriteBlockSize = 1024 * 1024

	// Magic is the first u16 of every nfdump file.
	Magic = 0xA50C
	// LayoutVersion is the layout this package reads and writes.
	LayoutVersion = 2
	// LegacyLayoutVersion is the nfdump 1.6 layout, recognised but refused.
	LegacyLayoutVersion = 1

	// NfdVersion171 is the nfdversion word nfdump 1.7.1 writes.
	NfdVersion171 = 0x01070100
)

// Block types.
const (
	BlockTypeV1    = 1 // nfdump 1.5 blocks (never in layout 2)
	BlockTypeV2    = 2 // nfdump 1.6 blocks (layout 1)
	BlockTypeData  = 3 // ordinary block of records
	BlockTypeArray = 4 // array block (geo DB files)
)

// Header is the 40-byte layout-2 file header.
type Header struct {
	Magic          uint16
	Version        uint16
	NfdVersion     uint32
	Created        int64 // Unix seconds
	Compression    Compression
	Encryption     uint8
	AppendixBlocks uint16
	Creator        uint32 // "unused" in 1.7.1, creator id from 1.7.2 on
	OffAppendix    int64
	BlockSize      uint32
	NumBlocks      uint32
}

// CreatedTime returns the creation time of the file.
func (h *Header) CreatedTime() time.Time { return time.Unix(h.Created, 0) }

func parseHeader(b []byte) Header {
	le := binary.LittleEndian
	return Header{
		Magic:          le.Uint16(b[0:]),
		Version:        le.Uint16(b[2:]),
		NfdVersion:     le.Uint32(b[4:]),
		Created:        int64(le.Uint64(b[8:])),
		Compression:    Compression(b[16]),
		Encryption:     b[17],
		AppendixBlocks: le.Uint16(b[18:]),
		Creator:        le.Uint32(b[20:]),
		OffAppendix:    int64(le.Uint64(b[24:])),
		BlockSize:      le.Uint32(b[32:]),
		NumBlocks:      le.Uint32(b[36:]),
	}
}

// AppendBinary appends the 40-byte encoding of h to b.
func (h *Header) AppendBinary(b []byte) ([]byte, error) {
	le := binary.LittleEndian
	b = le.AppendUint16(b, h.Magic)
	b = le.AppendUint16(b, h.Version)
	b = le.AppendUint32(b, h.NfdVersion)
	b = le.AppendUint64(b, uint64(h.Created))
	b = append(b, byte(h.Compression), h.Encryption)
	b = le.AppendUint16(b, h.AppendixBlocks)
	b = le.AppendUint32(b, h.Creator)
	b = le.AppendUint64(b, uint64(h.OffAppendix))
	b = le.AppendUint32(b, h.BlockSize)
	b = le.AppendUint32(b, h.NumBlocks)
	return b, nil
}

// BlockHeader is the 12-byte header in front of every block.
type BlockHeader struct {
	NumRecords uint32
	Size       uint32 // stored (possibly compressed) payload size
	Type       uint16
	Flags      uint16
}

func parseBlockHeader(b []byte) BlockHeader {
	le := binary.LittleEndian
	return BlockHeader{
		NumRecords: le.Uint32(b[0:]),
		Size:       le.Uint32(b[4:]),
		Type:       le.Uint16(b[8:]),
		Flags:      le.Uint16(b[10:]),
	}
}

func (bh BlockHeader) appendBinary(b []byte) []byte {
	le := binary.LittleEndian
	b = le.AppendUint32(b, bh.NumRecords)
	b = le.AppendUint32(b, bh.Size)
	b = le.AppendUint16(b, bh.Type)
	return le.AppendUint16(b, bh.Flags)
}
