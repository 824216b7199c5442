package xz

import "fmt"

// On-disk structures of the .xz file format, version 1.2.1
// (https://tukaani.org/xz/xz-file-format.txt). Multi-byte integers are
// little endian.

// HeaderMagic opens every stream: 0xFD '7' 'z' 'X' 'Z' 0x00.
var HeaderMagic = [6]byte{0xFD, '7', 'z', 'X', 'Z', 0x00}

// FooterMagic closes every stream: 'Y' 'Z'.
var FooterMagic = [2]byte{'Y', 'Z'}

// StreamHeader is the 12-byte header of an xz stream (spec 2.1.1).
type StreamHeader struct {
	Magic [6]byte
	Flags [2]byte // Flags[0] is 0; Flags[1] low nibble is the CheckType
	CRC32 uint32  // CRC32 of Flags
}

// StreamFooter is the 12-byte footer of an xz stream (spec 2.1.2).
type StreamFooter struct {
	CRC32        uint32  // CRC32 of BackwardSize and Flags
	BackwardSize uint32  // index size is (BackwardSize+1)*4
	Flags        [2]byte // same as the header's
	Magic        [2]byte
}

const (
	headerLen = 12
	footerLen = 12
)

// Block header flag bits (spec 3.1.2).
const (
	blockFlagFilters      = 0x03 // number of filters minus one
	blockFlagReserved     = 0x3C
	blockFlagCompressed   = 0x40 // Compressed Size present
	blockFlagUncompressed = 0x80 // Uncompressed Size present
)

// CheckType is the integrity check of a stream's blocks (spec 2.1.1.2).
type CheckType uint8

// The check types that this package verifies.
const (
	CheckNone   CheckType = 0x00
	CheckCRC32  CheckType = 0x01
	CheckCRC64  CheckType = 0x04
	CheckSHA256 CheckType = 0x0A
)

// Size returns the length in bytes of a check value of type c, which the
// spec fixes for every type, known or reserved.
func (c CheckType) Size() int {
	if c > 0x0F {
		return -1
	}
	if c == 0 {
		return 0
	}
	return 4 << ((c - 1) / 3)
}

// String returns the name xz uses for the check ("CRC64", …).
func (c CheckType) String() string {
	switch c {
	case CheckNone:
		return "None"
	case CheckCRC32:
		return "CRC32"
	case CheckCRC64:
		return "CRC64"
	case CheckSHA256:
		return "SHA-256"
	}
	return fmt.Sprintf("Unknown-%d", uint8(c))
}

// FilterID identifies a filter in a block's filter chain (spec 5.3).
type FilterID uint64

// Filter IDs defined by the spec.
const (
	FilterDelta    FilterID = 0x03
	FilterX86      FilterID = 0x04
	FilterPowerPC  FilterID = 0x05
	FilterIA64     FilterID = 0x06
	FilterARM      FilterID = 0x07
	FilterARMThumb FilterID = 0x08
	FilterSPARC    FilterID = 0x09
	FilterARM64    FilterID = 0x0A
	FilterRISCV    FilterID = 0x0B
	FilterLZMA2    FilterID = 0x21
)

// String returns the filter's name as xz prints it.
func (f FilterID) String() string {
	switch f {
	case FilterDelta:
		return "Delta"
	case FilterX86:
		return "x86 BCJ"
	case FilterPowerPC:
		return "PowerPC BCJ"
	case FilterIA64:
		return "IA-64 BCJ"
	case FilterARM:
		return "ARM BCJ"
	case FilterARMThumb:
		return "ARM-Thumb BCJ"
	case FilterSPARC:
		return "SPARC BCJ"
	case FilterARM64:
		return "ARM64 BCJ"
	case FilterRISCV:
		return "RISC-V BCJ"
	case FilterLZMA2:
		return "LZMA2"
	}
	return fmt.Sprintf("filter %#x", uint64(f))
}
