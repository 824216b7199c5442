package ext4

import (
	"encoding/binary"
	"hash/crc32"
	"sync"
)

// castagnoli is built on first use: the table set-up costs a tenth of a
// millisecond, which commands that never check a checksum need not pay.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// crc32c is the kernel's crc32c_le(seed, p): CRC-32C without the final
// inversion, as ext4 uses it for metadata_csum.
func crc32c(seed uint32, p []byte) uint32 {
	return ^crc32.Update(^seed, castagnoli(), p)
}

func crc32cU32(seed, v uint32) uint32 {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return crc32c(seed, b[:])
}

// xattrBlockCsum is the metadata_csum checksum of the external xattr
// block b stored at block blk: over the block number and the block with
// its checksum field (at 0x10) taken as zero.
func xattrBlockCsum(seed uint32, blk uint64, b []byte) uint32 {
	c := crc32c(seed, binary.LittleEndian.AppendUint64(nil, blk))
	c = crc32c(c, b[:0x10])
	c = crc32c(c, []byte{0, 0, 0, 0})
	return crc32c(c, b[0x14:])
}

// crc16Table is the table of the reflected CRC-16 (polynomial 0x8005) used
// by the gdt_csum (uninit_bg) group descriptor checksums.
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xA001
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return t
}()

func crc16(crc uint16, p []byte) uint16 {
	for _, b := range p {
		crc = crc>>8 ^ crc16Table[byte(crc)^b]
	}
	return crc
}
