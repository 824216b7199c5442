package zero

import "testing"

func TestIs(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 4095, 64 << 10, 64<<10 + 1, 300 << 10} {
		b := make([]byte, n)
		if !Is(b) {
			t.Errorf("%d zero bytes: Is = false", n)
		}
		for _, at := range []int{0, n / 2, n - 1} {
			if n == 0 {
				continue
			}
			b[at] = 1
			if Is(b) {
				t.Errorf("%d bytes with a one at %d: Is = true", n, at)
			}
			b[at] = 0
		}
	}
}
