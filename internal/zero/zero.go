// Package zero tells whether a buffer holds only zero bytes, at the speed
// of the runtime's memory comparison: free space in disk images is zeros,
// and several layers (flash, convert, the xz and spool readers, shrink and
// its undo log) skip or shorten it.
package zero

// page is what buffers are compared with, a piece at a time.
var page [64 << 10]byte

// Is reports whether b holds only zero bytes (true for an empty b).
func Is(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(page))
		if string(b[:n]) != string(page[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
