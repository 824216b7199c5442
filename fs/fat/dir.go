package fat

import (
	"fmt"
	"imgtool/fs/meta"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// node is one listed directory entry: a file or a subdirectory.
type node struct {
	name     string
	short    [11]byte // the raw 8.3 name
	attr     Attr
	cluster  uint32
	size     uint32
	off      int64 // byte offset of the short entry in the filesystem
	crtTenth uint8
	crtTime  uint16
	crtDate  uint16
	accDate  uint16
	wrtTime  uint16
	wrtDate  uint16
	dup      bool // a subdirectory whose cluster an earlier entry here already names
}

func (n *node) isDir() bool { return n.attr&AttrDirectory != 0 }

// dirData is a parsed directory.
type dirData struct {
	first     uint32 // first cluster (0: the FAT12/16 root)
	entries   []node
	label     string // volume-label entry (meaningful in the root only)
	hasLabel  bool
	dotdot    uint32 // cluster named by the ".." entry
	hasDotdot bool
}

// dirParser turns a stream of 32-byte directory entries into nodes,
// assembling long names.
type dirParser struct {
	d     *dirData
	index int  // raw entries seen
	done  bool // end-of-directory marker seen
	// long name in progress
	lfn   [lfnMaxOrd][lfnChars]uint16
	count int   // pieces in the sequence (0: none in progress)
	next  int   // sequence number expected next (count down to 1)
	sum   uint8 // checksum the pieces carry
	dirs  map[uint32]bool
	// hidden, when set, records names that could not be shown.
	hidden *meta.HiddenLog
}

func newDirParser(first uint32) *dirParser {
	return &dirParser{d: &dirData{first: first}}
}

// feed parses b, a whole number of entries, whose first entry lies at byte
// offset off of the filesystem. It stops at the end-of-directory marker or
// at the specification's entry limit.
func (p *dirParser) feed(b []byte, off int64) {
	for i := 0; i+dirEntrySize <= len(b) && !p.done; i += dirEntrySize {
		if p.index >= maxDirEntries {
			p.done = true
			return
		}
		p.entry(b[i:i+dirEntrySize], off+int64(i))
		p.index++
	}
}

func (p *dirParser) entry(e []byte, off int64) {
	attr := Attr(e[11])
	switch {
	case e[0] == 0x00:
		p.done = true
		return
	case e[0] == 0xE5:
		p.count = 0
		return
	case attr&0x3F == AttrLongName:
		p.longPiece(e)
		return
	}
	count, sum := p.count, p.sum
	complete := count > 0 && p.next == 0
	p.count = 0
	de := decodeDirEntry(e)
	if attr&AttrVolumeID != 0 {
		if attr&AttrDirectory == 0 && !p.d.hasLabel {
			p.d.label, p.d.hasLabel = labelString(de.Name[:]), true
		}
		return
	}
	cluster := uint32(de.FstClusHI)<<16 | uint32(de.FstClusLO)
	if de.Name[0] == '.' {
		rest := strings.TrimRight(string(de.Name[1:]), " ")
		if rest == "" || rest == "." {
			if rest == "." && attr&AttrDirectory != 0 && p.index < 2 && !p.d.hasDotdot {
				p.d.dotdot, p.d.hasDotdot = cluster, true
			}
			return
		}
	}
	name := ""
	if complete && checksum(de.Name) == sum {
		name = p.longName(count)
	}
	if !validName(name) {
		long := name
		name = shortName(de.Name, de.NTRes)
		if !validName(name) {
			if p.hidden != nil {
				p.hidden.Add(fmt.Sprintf("hid the entry %q at offset %d: not a safe file name", name, off))
			}
			return
		}
		if long != "" && p.hidden != nil {
			p.hidden.Add(fmt.Sprintf("showed the entry at offset %d by its short name %q: its long name %q is not a safe file name", off, name, long))
		}
	}
	n := node{
		name:     name,
		short:    de.Name,
		attr:     attr,
		cluster:  cluster,
		size:     de.FileSize,
		off:      off,
		crtTenth: de.CrtTimeTenth,
		crtTime:  de.CrtTime,
		crtDate:  de.CrtDate,
		accDate:  de.LstAccDate,
		wrtTime:  de.WrtTime,
		wrtDate:  de.WrtDate,
	}
	if n.isDir() {
		n.size = 0
		if p.dirs == nil {
			p.dirs = make(map[uint32]bool)
		}
		n.dup = p.dirs[cluster]
		p.dirs[cluster] = true
	}
	p.d.entries = append(p.d.entries, n)
}

// longPiece records one long-name entry. A piece that does not continue
// the sequence in progress abandons it.
func (p *dirParser) longPiece(e []byte) {
	ord := int(e[0])
	if ord&lfnLast != 0 {
		n := ord &^ lfnLast
		if n == 0 || n > lfnMaxOrd {
			p.count = 0
			return
		}
		p.count, p.next, p.sum = n, n, e[13]
	} else if p.count == 0 || ord != p.next || e[13] != p.sum {
		p.count = 0
		return
	}
	p.lfn[p.next-1] = lfnName(e)
	p.next--
}

// longName decodes the assembled pieces; "" when they hold no valid name.
func (p *dirParser) longName(count int) string {
	u := make([]uint16, 0, count*lfnChars)
	for i := range count {
		u = append(u, p.lfn[i][:]...)
	}
	for i, c := range u {
		if c == 0 {
			u = u[:i]
			break
		}
	}
	if len(u) == 0 || len(u) > 255 {
		return ""
	}
	return string(utf16.Decode(u))
}

// checksum is the long-name checksum of a short name (fatgen103, 7).
func checksum(name [11]byte) uint8 {
	var s uint8
	for _, c := range name {
		s = (s>>1 | s<<7) + c
	}
	return s
}

// shortName renders an 8.3 name, applying the NT lower-case flags.
func shortName(raw [11]byte, ntres uint8) string {
	if raw[0] == 0x05 {
		raw[0] = 0xE5
	}
	conv := func(b []byte, lower bool) string {
		end := len(b)
		for end > 0 && b[end-1] == ' ' {
			end--
		}
		var sb strings.Builder
		for _, c := range b[:end] {
			if lower && c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			sb.WriteRune(oemRune(c))
		}
		return sb.String()
	}
	base := conv(raw[:8], ntres&ntLowerBase != 0)
	ext := conv(raw[8:], ntres&ntLowerExt != 0)
	if ext == "" {
		return base
	}
	return base + "." + ext
}

// validName reports whether s can be a path element of io/fs.
func validName(s string) bool {
	return s != "" && s != "." && s != ".." && utf8.ValidString(s) &&
		!strings.ContainsAny(s, "/\x00")
}

// lookup finds a name: exactly, else case-insensitively, else by 8.3 alias.
func (d *dirData) lookup(name string) *node {
	for i := range d.entries {
		if d.entries[i].name == name {
			return &d.entries[i]
		}
	}
	for i := range d.entries {
		if strings.EqualFold(d.entries[i].name, name) {
			return &d.entries[i]
		}
	}
	if len(name) <= 12 {
		for i := range d.entries {
			if strings.EqualFold(shortName(d.entries[i].short, 0), name) {
				return &d.entries[i]
			}
		}
	}
	return nil
}

// oemRune maps a byte of code page 437 to Unicode.
func oemRune(c byte) rune {
	if c < 0x80 {
		return rune(c)
	}
	return cp437[c-0x80]
}

// cp437 is the upper half of IBM code page 437, the default OEM code page
// of DOS, Windows and the Linux vfat driver.
var cp437 = [128]rune([]rune(
	"ÇüéâäàåçêëèïîìÄÅ" +
		"ÉæÆôöòûùÿÖÜ¢£¥₧ƒ" +
		"áíóúñÑªº¿⌐¬½¼¡«»" +
		"░▒▓│┤╡╢╖╕╣║╗╝╜╛┐" +
		"└┴┬├─┼╞╟╚╔╩╦╠═╬╧" +
		"╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀" +
		"αßΓπΣσµτΦΘΩδ∞φε∩" +
		"≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0"))
