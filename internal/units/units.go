// Package units parses and formats byte sizes the way coreutils does:
// K, M, G, T (and KiB, MiB, …) are powers of 1024; KB, MB, GB, TB are
// powers of 1000, as SD card vendors count.
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseSize parses "7.4G", "8GB", "512MiB", "1000000" (bytes) and returns
// the size in bytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size; give a number with an optional unit such as 8G or 7.4GB")
	}
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, suffix := strings.TrimSpace(t[:i]), strings.ToUpper(strings.TrimSpace(t[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("bad size %q: give a number with an optional unit such as 8G or 7.4GB", s)
	}
	mult := float64(1)
	if suffix != "" && suffix != "B" {
		letters := "KMGTPE"
		p := strings.IndexByte(letters, suffix[0])
		if p < 0 {
			return 0, fmt.Errorf("bad size unit %q in %q: use K, M, G, T (powers of 1024) or KB, MB, GB, TB (powers of 1000)", suffix, s)
		}
		base := float64(1024)
		switch suffix[1:] {
		case "", "IB":
		case "B":
			base = 1000
		default:
			return 0, fmt.Errorf("bad size unit %q in %q: use K, M, G, T (powers of 1024) or KB, MB, GB, TB (powers of 1000)", suffix, s)
		}
		mult = math.Pow(base, float64(p+1))
	}
	b := v * mult
	if b > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(math.Round(b)), nil
}

// Human formats a byte count with binary units: "512 B", "64 MiB",
// "3.62 GiB".
func Human(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n)
	u := 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	var s string
	switch {
	case u == 0:
		s = fmt.Sprintf("%d B", n)
	case v == math.Trunc(v):
		s = fmt.Sprintf("%.0f %s", v, units[u])
	case v < 10:
		s = fmt.Sprintf("%.2f %s", v, units[u])
	case v < 100:
		s = fmt.Sprintf("%.1f %s", v, units[u])
	default:
		s = fmt.Sprintf("%.0f %s", v, units[u])
	}
	if neg {
		return "-" + s
	}
	return s
}
