package flash

// Decoding of Windows' STORAGE_DEVICE_DESCRIPTOR (winioctl.h). It has no
// build tag so that it is tested on every system.

import (
	"encoding/binary"
	"strings"
)

// storageInfo is what List uses from a STORAGE_DEVICE_DESCRIPTOR.
type storageInfo struct {
	vendor, product, serial string
	removable               bool
	transport               Transport
}

// busTransport maps STORAGE_BUS_TYPE to a Transport.
func busTransport(bus uint32) Transport {
	switch bus {
	case 7: // BusTypeUsb
		return TransportUSB
	case 0xC, 0xD: // BusTypeSd, BusTypeMmc
		return TransportMMC
	case 3, 2, 0xB, 0xA: // Ata, Atapi, Sata, Sas
		return TransportSATA
	case 0x11: // BusTypeNvme
		return TransportNVMe
	case 0xE, 0xF: // BusTypeVirtual, BusTypeFileBackedVirtual
		return TransportVirtual
	}
	return TransportUnknown
}

// parseStorageDescriptor decodes a STORAGE_DEVICE_DESCRIPTOR returned by
// IOCTL_STORAGE_QUERY_PROPERTY; strings are NUL-terminated at offsets into
// the buffer. It returns false when b is too short.
func parseStorageDescriptor(b []byte) (storageInfo, bool) {
	const fixed = 36
	if len(b) < fixed {
		return storageInfo{}, false
	}
	size := int(binary.LittleEndian.Uint32(b[4:]))
	if size > len(b) || size < fixed {
		size = len(b)
	}
	b = b[:size]
	str := func(at int) string {
		off := int(binary.LittleEndian.Uint32(b[at:]))
		if off <= 0 || off >= len(b) {
			return ""
		}
		s := b[off:]
		if i := strings.IndexByte(string(s), 0); i >= 0 {
			s = s[:i]
		}
		return strings.TrimSpace(string(s))
	}
	return storageInfo{
		removable: b[10] != 0,
		vendor:    str(12),
		product:   str(16),
		serial:    str(24),
		transport: busTransport(binary.LittleEndian.Uint32(b[28:])),
	}, true
}
