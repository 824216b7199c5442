package ext4

import (
	"encoding/binary"
	"math/bits"
)

// bitset is a plain bit set indexed from 0, used for whole-filesystem block
// and inode bitmaps during a shrink (one bit per block: 1 MiB per 32 GiB of
// 4 KiB blocks).
type bitset []uint64

func newBitset(n uint64) bitset { return make(bitset, (n+63)/64) }

func (b bitset) get(i uint64) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) set(i uint64)      { b[i/64] |= 1 << (i % 64) }
func (b bitset) clr(i uint64)      { b[i/64] &^= 1 << (i % 64) }

// count returns the number of set bits in [lo, hi).
func (b bitset) count(lo, hi uint64) uint64 {
	var n uint64
	for i := lo; i < hi; {
		if i%64 == 0 && i+64 <= hi {
			n += uint64(bits.OnesCount64(b[i/64]))
			i += 64
			continue
		}
		if b.get(i) {
			n++
		}
		i++
	}
	return n
}

// nextClear returns the first clear bit in [from, limit), or limit.
func (b bitset) nextClear(from, limit uint64) uint64 {
	for i := from; i < limit; {
		if i%64 == 0 && b[i/64] == ^uint64(0) {
			i += 64
			continue
		}
		if !b.get(i) {
			return i
		}
		i++
	}
	return limit
}

// setBytes ORs a little-endian on-disk bitmap of nbits bits into b starting
// at bit base.
func (b bitset) setBytes(base uint64, p []byte, nbits uint64) {
	for j := uint64(0); j < nbits; j += 8 {
		v := p[j/8]
		if v == 0 {
			continue
		}
		for k := uint64(0); k < 8 && j+k < nbits; k++ {
			if v&(1<<k) != 0 {
				b.set(base + j + k)
			}
		}
	}
}

// le is the byte order of every ext4 structure except the journal.
var sle = binary.LittleEndian
