package sizemark

import "testing"

func TestRoundTrip(t *testing.T) {
	for _, n := range []int64{0, 512, 4 << 30, 1 << 40} {
		if got, ok := FromGzipExtra(GzipExtra(n)); !ok || got != n {
			t.Errorf("gzip %d: %d %v", n, got, ok)
		}
		if got, ok := FromZstdStart(ZstdFrame(n)); !ok || got != n {
			t.Errorf("zstd %d: %d %v", n, got, ok)
		}
	}
	// Other subfields before ours, and foreign data.
	extra := append([]byte{'A', 'B', 2, 0, 9, 9}, GzipExtra(77)...)
	if got, ok := FromGzipExtra(extra); !ok || got != 77 {
		t.Errorf("after another subfield: %d %v", got, ok)
	}
	for _, bad := range [][]byte{nil, {'I', 'T', 8, 0, 1}, {'I', 'T', 200, 0}} {
		if _, ok := FromGzipExtra(bad); ok {
			t.Errorf("accepted %v", bad)
		}
	}
	if _, ok := FromZstdStart(make([]byte, 40)); ok {
		t.Error("accepted zeros as a zstd size frame")
	}
}
