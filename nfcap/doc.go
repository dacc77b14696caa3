// Package nfcap reads and writes nfdump flow files (layout 2, as written by
// nfcapd and nfdump 1.7.x) in pure Go.
//
// # File layout
//
// All integers are little-endian (nfdump writes its structs in host order;
// every real file is from a little-endian host).
//
//	offset 0    file header, 40 bytes: magic 0xA50C, layout 2, nfdversion,
//	            created, compression (0 none, 1 LZO, 2 BZ2, 3 LZ4, 4 ZSTD),
//	            encryption (0), appendixBlocks, creator, offAppendix,
//	            BlockSize (unused), NumBlocks (data blocks only)
//	offset 40   NumBlocks data blocks, back to back
//	offAppendix appendixBlocks appendix blocks: ident (0x8001) and stat
//	            (0x8002) records
//
// Every block is a 12-byte header (NumRecords u32, stored size u32, type
// u16, flags u16) followed by one self-contained compressed unit holding at
// most 5 MiB once decompressed. Type-3 blocks hold records back to back,
// each starting with type u16 and size u16 (header included). Flow records
// are type 11 ("V3"): a 12-byte header and a list of elements, each a 4-byte
// id/length header and its data. The username element (id 24, 72 bytes)
// carries a NUL-padded 66-byte name, which `nfdump -o "fmt:%uname"` prints.
//
// The full specification, checked against real files, is in the project's
// docs (nfdump-format.md).
//
// # Reading
//
// OpenFile or NewReader read the header and appendix, then hand out blocks
// (NextBlock) or records (Next, Record, Flow, Flows). Memory is bounded by
// a few blocks whatever the file size; blocks are read and decompressed
// ahead on a second goroutine. Bad input never panics: errors are
// *FormatError values naming the file, block and offset, wrapping one of
// the sentinel errors (ErrBadMagic, ErrTruncated, ErrCorrupt, ...).
//
// Layout 1 (nfdump 1.6) files are recognised and refused with
// ErrLegacyLayout, with the nfdump command that converts the file.
package nfcap
