package fat

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
)

// This file turns a long name into the directory entries that store it:
// the checks of fatgen103 section 7 on long names, the short alias (the
// "basis-name generation" and "numeric-tail generation" algorithms), and
// the long-name entries with their checksum.

// maxLongName is the longest long name in UTF-16 code units.
const maxLongName = 255

// shortSpecial holds the punctuation allowed in a short name besides
// letters and digits (fatgen103, section 6.1).
const shortSpecial = "$%'-_@~`!(){}^#&"

// checkLongName returns the UTF-16 form of a name that a long-name entry
// may hold, or an error that says what is wrong with it.
func checkLongName(name string) ([]uint16, error) {
	if !validName(name) {
		return nil, fmt.Errorf("%w: %q is not a file name", ErrBadName, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7F || strings.ContainsRune(`"*/:<>?\|`, r) {
			return nil, fmt.Errorf("%w: %q holds %q, which FAT does not allow; rename it", ErrBadName, name, r)
		}
	}
	if last := name[len(name)-1]; last == '.' || last == ' ' {
		return nil, fmt.Errorf("%w: %q ends with a dot or a space, which FAT drops; rename it", ErrBadName, name)
	}
	u := utf16.Encode([]rune(name))
	if len(u) > maxLongName {
		return nil, fmt.Errorf("%w: %q is %d UTF-16 characters long, more than the %d FAT allows; shorten it", ErrBadName, name, len(u), maxLongName)
	}
	return u, nil
}

// plainShort reports whether name is a valid 8.3 name whose base and
// extension are each in one case; it returns the stored short name and
// the NT lower-case flags. Such a name needs no long-name entries.
func plainShort(name string) (sn [11]byte, ntres uint8, ok bool) {
	base, ext, dot := strings.Cut(name, ".")
	if base == "" || len(base) > 8 || len(ext) > 3 || dot && ext == "" || strings.Contains(ext, ".") {
		return sn, 0, false
	}
	part := func(s string, dst []byte, flag uint8) bool {
		lower, upper := false, false
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c >= 'a' && c <= 'z':
				lower = true
				c -= 'a' - 'A'
			case c >= 'A' && c <= 'Z':
				upper = true
			case c >= '0' && c <= '9' || strings.IndexByte(shortSpecial, c) >= 0:
			default:
				return false
			}
			dst[i] = c
		}
		if lower && upper {
			return false
		}
		if lower {
			ntres |= flag
		}
		return true
	}
	for i := range sn {
		sn[i] = ' '
	}
	if !part(base, sn[:8], ntLowerBase) || !part(ext, sn[8:], ntLowerExt) {
		return sn, 0, false
	}
	if sn[0] == 0xE5 {
		sn[0] = 0x05
	}
	return sn, ntres, true
}

// oemUpper maps a character to the upper-case code page 437 byte that a
// short name stores; ok is false when it has none (the character becomes
// '_' and the alias is lossy).
func oemUpper(r rune) (byte, bool) {
	r = unicode.ToUpper(r)
	switch {
	case r >= 'A' && r <= 'Z' || r >= '0' && r <= '9':
		return byte(r), true
	case r < 0x80:
		if strings.ContainsRune(shortSpecial, r) {
			return byte(r), true
		}
		return '_', false
	}
	for i, c := range cp437 {
		if c == r && !unicode.IsLower(c) && !unicode.IsSpace(c) {
			return byte(0x80 + i), true
		}
	}
	return '_', false
}

// aliasBasis is the basis name of fatgen103's algorithm: upper case,
// spaces and leading dots dropped, characters that a short name cannot
// hold replaced by '_', the part before the last dot cut to 8 bytes and
// the part after it to 3. exact is true when the basis spells the whole
// name (no character lost, replaced or cut).
func aliasBasis(name string) (base, ext []byte, exact bool) {
	exact = true
	trimmed := strings.TrimLeft(name, ". ")
	if trimmed != name {
		exact = false
	}
	stem, suffix := trimmed, ""
	if i := strings.LastIndexByte(trimmed, '.'); i >= 0 {
		stem, suffix = trimmed[:i], trimmed[i+1:]
	}
	conv := func(s string, max int) []byte {
		var out []byte
		for _, r := range s {
			if r == ' ' || r == '.' {
				exact = false
				continue
			}
			b, ok := oemUpper(r)
			if !ok {
				exact = false
			}
			if len(out) == max {
				exact = false
				break
			}
			out = append(out, b)
		}
		return out
	}
	base = conv(stem, 8)
	ext = conv(suffix, 3)
	if len(base) == 0 {
		base, exact = []byte{'_'}, false
	}
	return base, ext, exact
}

// makeAlias returns a short name for a long one that taken does not
// report as used: the basis alone when it spells the whole name, else the
// basis with the first free numeric tail "~1", "~2", … (fatgen103,
// "Numeric-Tail Generation Algorithm"). limit bounds the tails tried.
func makeAlias(name string, taken func([11]byte) bool, limit int) ([11]byte, error) {
	base, ext, exact := aliasBasis(name)
	build := func(b []byte) [11]byte {
		var sn [11]byte
		for i := range sn {
			sn[i] = ' '
		}
		copy(sn[:8], b)
		copy(sn[8:], ext)
		if sn[0] == 0xE5 {
			sn[0] = 0x05
		}
		return sn
	}
	if exact {
		if sn := build(base); !taken(sn) {
			return sn, nil
		}
	}
	for n := 1; n <= min(limit, 999999); n++ {
		tail := "~" + strconv.Itoa(n)
		b := base[:min(len(base), 8-len(tail))]
		if sn := build(append(b[:len(b):len(b)], tail...)); !taken(sn) {
			return sn, nil
		}
	}
	return [11]byte{}, fmt.Errorf("%w: no free short name for %q after %d tries; rename it", ErrBadName, name, min(limit, 999999))
}

// lfnEntries returns the long-name entries of u, in the order they are
// stored: the last piece (flagged) first, the first piece just before the
// short entry.
func lfnEntries(u []uint16, sn [11]byte) [][]byte {
	n := (len(u) + lfnChars - 1) / lfnChars
	sum := checksum(sn)
	out := make([][]byte, 0, n)
	for ord := n; ord >= 1; ord-- {
		e := make([]byte, dirEntrySize)
		var piece [lfnChars]uint16
		for i := range piece {
			j := (ord-1)*lfnChars + i
			switch {
			case j < len(u):
				piece[i] = u[j]
			case j == len(u):
				piece[i] = 0x0000
			default:
				piece[i] = 0xFFFF
			}
		}
		e[0] = byte(ord)
		if ord == n {
			e[0] |= lfnLast
		}
		e[11] = byte(AttrLongName)
		e[13] = sum
		k := 0
		for _, r := range [][2]int{{1, 11}, {14, 26}, {28, 32}} {
			for o := r[0]; o < r[1]; o += 2 {
				binary.LittleEndian.PutUint16(e[o:], piece[k])
				k++
			}
		}
		out = append(out, e)
	}
	return out
}
