package units

import "testing"

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"1000", 1000}, {"1K", 1024}, {"1KiB", 1024}, {"1KB", 1000}, {"8GB", 8e9},
		{"7.4G", 7945689498}, {"4 GiB", 4 << 30}, {"512m", 512 << 20}, {"1.5T", 1649267441664},
	} {
		got, err := ParseSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "G", "-1G", "1X", "1GQ", "abc", "1e400"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestHuman(t *testing.T) {
	for _, c := range []struct {
		in   int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1 KiB"}, {64 << 20, "64 MiB"}, {3886000000, "3.62 GiB"}, {-2048, "-2 KiB"}, {150 << 20, "150 MiB"}, {(15 << 20) + (1 << 19), "15.5 MiB"}} {
		if got := Human(c.in); got != c.want {
			t.Errorf("Human(%d) = %q; want %q", c.in, got, c.want)
		}
	}
}
