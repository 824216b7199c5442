// Package bmap reads block map files (.bmap), the XML format of bmap-tools
// that lists which blocks of a disk image hold data, with a checksum per
// range, so that only those blocks need to be written to a card.
//
// # Scope
//
// Parse reads format versions 1.x and 2.x:
//
//	<bmap version="2.0">
//	  <ImageSize>…</ImageSize> <BlockSize>…</BlockSize> <BlocksCount>…</BlocksCount>
//	  <ChecksumType>sha256</ChecksumType> <BmapFileChecksum>…</BmapFileChecksum>
//	  <BlockMap><Range chksum="…">first-last</Range> <Range>n</Range> …</BlockMap>
//	</bmap>
//
// Range checksums are SHA-1 in versions 1.0–1.3 and name their type with
// ChecksumType (sha1 or sha256) from 1.4 on; 2.0 always uses SHA-256. The
// file's own checksum (BmapFileChecksum, from 1.3 on) is checked by Parse.
// Verify wraps an image so that the data ranges are checked against their
// checksums while they are read.
//
// # Limits
//
// Only image sizes up to 2^62 bytes, block sizes up to 1 GiB and at most
// MaxRanges ranges are accepted. Ranges must be in order and must not
// overlap.
//
// # Security
//
// A .bmap file is untrusted input: sizes are checked against each other
// before use, the number of ranges is capped, and every range must lie
// inside the image.
package bmap

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"

	"imgtool/image"
)

// ErrFormat is wrapped by the errors Parse returns for a file that is not a
// valid block map.
var ErrFormat = errors.New("bmap: not a valid block map file")

// ErrChecksum is wrapped by the *ChecksumError reported for a range of the
// image that does not match its checksum.
var ErrChecksum = errors.New("bmap: checksum mismatch")

// MaxRanges caps the number of ranges in a file.
const MaxRanges = 1 << 22

// maxFileSize caps how much of a .bmap file is read.
const maxFileSize = 256 << 20

// Range is a run of blocks [First, Last] that holds data.
type Range struct {
	First, Last int64  // block numbers, inclusive
	Checksum    string // lower-case hex, "" when the file has none
}

// Map is a parsed block map.
type Map struct {
	Version      string // "2.0", "1.4", …
	ImageSize    int64  // bytes
	BlockSize    int64  // bytes
	BlocksCount  int64
	ChecksumType string // "sha1", "sha256" or "" when no range has a checksum
	Ranges       []Range
}

// Off returns the byte offset where r starts.
func (m *Map) Off(r Range) int64 { return r.First * m.BlockSize }

// Len returns the length of r in bytes (the last block of the image may be
// partial).
func (m *Map) Len(r Range) int64 { return min(m.ImageSize, (r.Last+1)*m.BlockSize) - m.Off(r) }

// MappedBytes is how many bytes of the image the ranges cover.
func (m *Map) MappedBytes() int64 {
	var n int64
	for _, r := range m.Ranges {
		n += m.Len(r)
	}
	return n
}

// Extents returns the map as extents covering [0, ImageSize): the ranges
// as Data, the gaps between them as Zero.
func (m *Map) Extents() []image.Extent {
	var out []image.Extent
	var pos int64
	for _, r := range m.Ranges {
		off, n := m.Off(r), m.Len(r)
		if off > pos {
			out = append(out, image.Extent{Off: pos, Len: off - pos, Kind: image.Zero})
		}
		out = append(out, image.Extent{Off: off, Len: n, Kind: image.Data})
		pos = off + n
	}
	if pos < m.ImageSize {
		out = append(out, image.Extent{Off: pos, Len: m.ImageSize - pos, Kind: image.Zero})
	}
	return out
}

// xmlMap mirrors the file.
type xmlMap struct {
	XMLName      xml.Name `xml:"bmap"`
	Version      string   `xml:"version,attr"`
	ImageSize    string   `xml:"ImageSize"`
	BlockSize    string   `xml:"BlockSize"`
	BlocksCount  string   `xml:"BlocksCount"`
	Mapped       string   `xml:"MappedBlocksCount"`
	ChecksumType string   `xml:"ChecksumType"`
	FileChecksum string   `xml:"BmapFileChecksum"`
	Ranges       []struct {
		Checksum string `xml:"chksum,attr"`
		Text     string `xml:",chardata"`
	} `xml:"BlockMap>Range"`
}

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// Parse reads a block map file.
func Parse(r io.Reader) (*Map, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("bmap: %w", err)
	}
	if len(raw) > maxFileSize {
		return nil, formatErr("larger than %d bytes", maxFileSize)
	}
	var x xmlMap
	if err := xml.Unmarshal(raw, &x); err != nil {
		return nil, formatErr("%v", err)
	}
	major, _, _ := strings.Cut(strings.TrimSpace(x.Version), ".")
	if major != "1" && major != "2" {
		return nil, formatErr("version %q is not supported (1.x and 2.x are)", x.Version)
	}
	m := &Map{Version: strings.TrimSpace(x.Version)}
	num := func(name, s string, lo, hi int64) (int64, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n < lo || n > hi {
			return 0, formatErr("%s %q is not a number from %d to %d", name, strings.TrimSpace(s), lo, hi)
		}
		return n, nil
	}
	if m.ImageSize, err = num("ImageSize", x.ImageSize, 0, 1<<62); err != nil {
		return nil, err
	}
	if m.BlockSize, err = num("BlockSize", x.BlockSize, 1, 1<<30); err != nil {
		return nil, err
	}
	want := (m.ImageSize + m.BlockSize - 1) / m.BlockSize
	if m.BlocksCount, err = num("BlocksCount", x.BlocksCount, 0, 1<<62); err != nil {
		return nil, err
	}
	if m.BlocksCount != want {
		return nil, formatErr("BlocksCount %d does not match ImageSize %d and BlockSize %d", m.BlocksCount, m.ImageSize, m.BlockSize)
	}
	ctype := strings.ToLower(strings.TrimSpace(x.ChecksumType))
	switch {
	case ctype == "" && major == "2":
		ctype = "sha256"
	case ctype == "":
		ctype = "sha1"
	case ctype != "sha1" && ctype != "sha256":
		return nil, formatErr("checksum type %q is not supported (sha1 and sha256 are)", ctype)
	}
	if fc := strings.TrimSpace(x.FileChecksum); fc != "" {
		if err := checkFile(raw, fc, ctype); err != nil {
			return nil, err
		}
	}
	if len(x.Ranges) > MaxRanges {
		return nil, formatErr("more than %d ranges", MaxRanges)
	}
	hexLen := map[string]int{"sha1": 40, "sha256": 64}[ctype]
	next := int64(0)
	var anySum bool
	for _, xr := range x.Ranges {
		t := strings.TrimSpace(xr.Text)
		a, b, isRange := strings.Cut(t, "-")
		first, err := num("range start", a, 0, m.BlocksCount-1)
		if err != nil {
			return nil, err
		}
		last := first
		if isRange {
			if last, err = num("range end", b, first, m.BlocksCount-1); err != nil {
				return nil, err
			}
		}
		if first < next {
			return nil, formatErr("range %q overlaps or precedes the one before", t)
		}
		next = last + 1
		sum := strings.ToLower(strings.TrimSpace(xr.Checksum))
		if sum != "" {
			if _, err := hex.DecodeString(sum); err != nil || len(sum) != hexLen {
				return nil, formatErr("range %q: checksum %q is not a %s hex digest", t, sum, ctype)
			}
			anySum = true
		}
		m.Ranges = append(m.Ranges, Range{First: first, Last: last, Checksum: sum})
	}
	if anySum {
		m.ChecksumType = ctype
	}
	return m, nil
}

// checkFile checks BmapFileChecksum: the file's checksum with the value
// itself replaced by as many ASCII zeros.
func checkFile(raw []byte, sum, ctype string) error {
	i := bytes.Index(raw, []byte(sum))
	if i < 0 {
		return formatErr("BmapFileChecksum not found")
	}
	buf := bytes.Clone(raw)
	copy(buf[i:], bytes.Repeat([]byte("0"), len(sum)))
	h := newHash(ctype)
	h.Write(buf)
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(sum) {
		return fmt.Errorf("%w: the file's own checksum does not match (BmapFileChecksum %s, computed %s): the .bmap file is damaged or was edited", ErrFormat, sum, got)
	}
	return nil
}

func newHash(ctype string) hash.Hash {
	if ctype == "sha1" {
		return sha1.New()
	}
	return sha256.New()
}

// Clip returns the map of the first size bytes of the image: ranges past
// size are dropped, and a range that crosses it is cut and loses its
// checksum (it can no longer be checked). A size at or past ImageSize
// returns m itself.
func (m *Map) Clip(size int64) *Map {
	if size >= m.ImageSize {
		return m
	}
	c := *m
	c.ImageSize = size
	c.BlocksCount = (size + m.BlockSize - 1) / m.BlockSize
	c.Ranges = nil
	for _, r := range m.Ranges {
		if r.First >= c.BlocksCount {
			break
		}
		if (r.Last+1)*m.BlockSize > size {
			r.Last, r.Checksum = c.BlocksCount-1, ""
		}
		c.Ranges = append(c.Ranges, r)
	}
	return &c
}
