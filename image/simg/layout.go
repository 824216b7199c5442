package simg

// On-disk layout of an Android sparse image as defined by AOSP's
// system/core/libsparse/sparse_format.h. All multi-byte fields are
// little-endian.

// Magic is the first four bytes of a sparse image, read as a little-endian
// uint32.
const Magic = 0xed26ff3a

// Sizes and limits.
const (
	HeaderSize      = 28 // size of Header; file_hdr_sz may be larger
	ChunkHeaderSize = 12 // size of ChunkHeader; chunk_hdr_sz may be larger
	MajorVersion    = 1
	maxBlockSize    = 64 << 20
	maxChunks       = 1 << 22
)

// Header is the sparse image header, exactly as on disk.
type Header struct {
	Magic         uint32
	MajorVersion  uint16 // 1
	MinorVersion  uint16 // 0
	FileHdrSz     uint16 // bytes of this header, 28
	ChunkHdrSz    uint16 // bytes of each chunk header, 12
	BlkSz         uint32 // block size in bytes, a multiple of 4
	TotalBlks     uint32 // blocks in the disk
	TotalChunks   uint32 // chunks in the file
	ImageChecksum uint32 // CRC32 of the disk; 0 when not set (not checked)
}

// ChunkHeader starts every chunk, exactly as on disk.
type ChunkHeader struct {
	ChunkType ChunkType
	Reserved1 uint16
	ChunkSz   uint32 // blocks of the disk this chunk covers
	TotalSz   uint32 // bytes of the chunk in the file, header included
}
