// Package sizemark records the decompressed size of an image at the start
// of the gzip and zstd files imgtool writes, so that a file cut exactly
// between two members or frames (which both formats would accept as a
// shorter, valid stream) is recognised as damaged.
//
// gzip: the first member is an empty member whose header carries an extra
// field with subfield ID "IT" and 8 bytes: the size, little-endian (RFC 1952
// section 2.3.1.1). zstd: the file starts with a skippable frame (magic
// 0x184D2A5A) holding "IMGTOOLSIZE\x00" and the same 8 bytes. Other tools
// ignore both.
package sizemark

import (
	"bytes"
	"encoding/binary"
)

// gzipID is the extra-field subfield identifier.
var gzipID = [2]byte{'I', 'T'}

// zstdMagic is the skippable-frame magic used for the size; the seekable
// format's seek table uses 0x184D2A5E.
const zstdMagic = 0x184D2A5A

var zstdTag = []byte("IMGTOOLSIZE\x00")

// GzipExtra returns the extra field that declares size.
func GzipExtra(size int64) []byte {
	b := append([]byte(nil), gzipID[:]...)
	b = binary.LittleEndian.AppendUint16(b, 8)
	return binary.LittleEndian.AppendUint64(b, uint64(size))
}

// FromGzipExtra finds the declared size in a gzip extra field.
func FromGzipExtra(extra []byte) (int64, bool) {
	for len(extra) >= 4 {
		n := int(binary.LittleEndian.Uint16(extra[2:]))
		if 4+n > len(extra) {
			return 0, false
		}
		if extra[0] == gzipID[0] && extra[1] == gzipID[1] && n == 8 {
			v := binary.LittleEndian.Uint64(extra[4:12])
			if v > 1<<62 {
				return 0, false
			}
			return int64(v), true
		}
		extra = extra[4+n:]
	}
	return 0, false
}

// ZstdFrame returns the skippable frame that declares size.
func ZstdFrame(size int64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, zstdMagic)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(zstdTag)+8))
	b = append(b, zstdTag...)
	return binary.LittleEndian.AppendUint64(b, uint64(size))
}

// ZstdFrameLen is the length of the frame ZstdFrame returns.
var ZstdFrameLen = 8 + len(zstdTag) + 8

// FromZstdStart finds the declared size in the first bytes of a zstd file.
func FromZstdStart(head []byte) (int64, bool) {
	if len(head) < ZstdFrameLen || binary.LittleEndian.Uint32(head) != zstdMagic ||
		int(binary.LittleEndian.Uint32(head[4:])) != len(zstdTag)+8 || !bytes.Equal(head[8:8+len(zstdTag)], zstdTag) {
		return 0, false
	}
	v := binary.LittleEndian.Uint64(head[8+len(zstdTag):])
	if v > 1<<62 {
		return 0, false
	}
	return int64(v), true
}
