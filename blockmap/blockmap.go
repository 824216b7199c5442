// Package blockmap computes which byte ranges of a disk image hold data
// that matters, from its partition table and filesystems, so that convert,
// flash and read can skip the rest.
//
// What is kept:
//   - everything before the first partition (boot code, the partition
//     table, and the boot loaders that single-board computers keep in that
//     gap), everything between partitions, and the GPT backup at the end;
//   - in a partition whose filesystem can say what it uses (FAT, ext2/3/4),
//     the allocated ranges only; in a swap partition its header page;
//   - every other partition whole (unknown content is never dropped).
//
// What is skipped: free space inside filesystems and the space after the
// last partition. With Options.ZeroHoles, ranges the image itself knows to
// be zero (holes) are reported as Zero too: right for outputs where what is
// not written reads as zeros (sparse files, compressed and VM images), wrong
// for a card whose old contents must be overwritten with those zeros.
package blockmap

import (
	"fmt"
	"sort"

	"imgtool/fs"
	"imgtool/fs/meta"
	"imgtool/image"
	"imgtool/part"
)

// PartitionUsage says how a partition was mapped.
type PartitionUsage struct {
	Number     int    `json:"number"`
	Filesystem string `json:"filesystem"` // "" when unknown
	Size       int64  `json:"size"`
	Mapped     int64  `json:"mapped"` // bytes kept
	Whole      bool   `json:"whole"`  // kept whole (unknown or unreadable)
	Reason     string `json:"reason,omitempty"`
}

// Map is the result of Compute.
type Map struct {
	Size       int64            // image size
	Extents    []image.Extent   // cover [0, Size) in order; Data = must be copied
	Partitions []PartitionUsage // one per partition
}

// DataBytes returns the number of bytes in Data extents.
func (m *Map) DataBytes() int64 {
	var n int64
	for _, e := range m.Extents {
		if e.Kind == image.Data {
			n += e.Len
		}
	}
	return n
}

// Options tunes Compute.
type Options struct {
	// NoVerify reads filesystems despite checksum mismatches.
	NoVerify bool
	// ZeroHoles also marks the image's own holes and known-zero ranges as
	// Zero, even where a filesystem uses them.
	ZeroHoles bool
}

// Compute builds the map of img. It reads the partition table and the
// allocation structures of each filesystem; it never reads file data.
func Compute(img image.Image, opt Options) (*Map, error) {
	size := img.Size()
	tbl, err := part.Read(img, size)
	if err != nil {
		return nil, fmt.Errorf("blockmap: reading the partition table: %w", err)
	}
	m := &Map{Size: size}
	var keep []meta.Range

	// Table, gaps and GPT backup: everything outside partitions up to the
	// end of the last one, plus the GPT backup area.
	var parts []part.Partition
	for _, p := range tbl.Partitions {
		if !p.Extended {
			parts = append(parts, p)
		}
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].Start < parts[j].Start })
	var pos int64
	for _, p := range parts {
		if p.Start > pos {
			keep = append(keep, meta.Range{Off: pos, Len: p.Start - pos})
		}
		if p.End() > pos {
			pos = p.End()
		}
	}
	if tbl.Kind == part.GPT && tbl.GPT != nil {
		// The backup array and header sit after the last usable LBA.
		ss := int64(tbl.SectorSize)
		backup := int64(tbl.GPT.LastUsableLBA+1) * ss
		if backup < size {
			keep = append(keep, meta.Range{Off: backup, Len: size - backup})
		}
	}
	// Extended partition containers hold EBRs in their gaps.
	for _, p := range tbl.Partitions {
		if p.Extended {
			keep = append(keep, ebrGaps(p, parts)...)
		}
	}

	for _, p := range parts {
		pu := PartitionUsage{Number: p.Number, Size: p.Size}
		ranges, fsType, reason := partitionRanges(p, opt)
		pu.Filesystem = fsType
		if ranges == nil {
			ranges = []meta.Range{{Off: 0, Len: p.Section().Size()}}
			pu.Whole, pu.Reason = true, reason
		}
		for _, r := range ranges {
			keep = append(keep, meta.Range{Off: p.Start + r.Off, Len: r.Len})
			pu.Mapped += r.Len
		}
		m.Partitions = append(m.Partitions, pu)
	}

	holes := []image.Extent{{Off: 0, Len: size, Kind: image.Data}}
	if opt.ZeroHoles {
		if holes, err = img.Extents(); err != nil {
			return nil, fmt.Errorf("blockmap: %w", err)
		}
	}
	m.Extents = build(size, keep, holes)
	return m, nil
}

// partitionRanges returns the used ranges of a partition relative to its
// start, or nil to keep it whole (with the reason).
func partitionRanges(p part.Partition, opt Options) ([]meta.Range, string, string) {
	sec := p.Section()
	info, err := fs.Identify(sec, sec.Size())
	if err != nil {
		return nil, "", "no filesystem recognised"
	}
	if info.Type == "swap" {
		page := info.BlockSize
		if page <= 0 || page > sec.Size() {
			page = 4096
		}
		return []meta.Range{{Off: 0, Len: page}}, "swap", ""
	}
	if info.NeedsRecovery {
		// The journal's pending blocks may not be marked in the bitmaps.
		return nil, info.Type, "journal needs recovery"
	}
	fsys, _, err := fs.Open(sec, sec.Size(), fs.Options{NoVerify: opt.NoVerify})
	if err != nil {
		return nil, info.Type, fmt.Sprintf("cannot read the filesystem: %v", err)
	}
	ranges, err := fsys.Allocated()
	if err != nil {
		return nil, info.Type, fmt.Sprintf("cannot read the allocation map: %v", err)
	}
	// The filesystem may be smaller than its partition: keep its own
	// ranges only; the tail of the partition is free.
	return ranges, info.Type, ""
}

// ebrGaps returns the parts of an extended partition not covered by
// logical partitions (where the EBRs live).
func ebrGaps(ext part.Partition, parts []part.Partition) []meta.Range {
	var out []meta.Range
	pos := ext.Start
	for _, p := range parts {
		if !p.Logical || p.Start < ext.Start || p.Start >= ext.End() {
			continue
		}
		if p.Start > pos {
			out = append(out, meta.Range{Off: pos, Len: p.Start - pos})
		}
		if p.End() > pos {
			pos = p.End()
		}
	}
	return out
}

// build merges the kept ranges, clips them to size, and marks as Zero what
// is not kept or is a hole of the image.
func build(size int64, keep []meta.Range, holes []image.Extent) []image.Extent {
	sort.Slice(keep, func(i, j int) bool { return keep[i].Off < keep[j].Off })
	var merged []meta.Range
	for _, r := range keep {
		if r.Off < 0 {
			r.Len += r.Off
			r.Off = 0
		}
		if r.Off+r.Len > size {
			r.Len = size - r.Off
		}
		if r.Len <= 0 {
			continue
		}
		if n := len(merged); n > 0 && r.Off <= merged[n-1].Off+merged[n-1].Len {
			if e := r.Off + r.Len; e > merged[n-1].Off+merged[n-1].Len {
				merged[n-1].Len = e - merged[n-1].Off
			}
			continue
		}
		merged = append(merged, r)
	}
	// Intersect with the image's data extents.
	var out []image.Extent
	add := func(off, n int64, k image.ExtentKind) {
		if n <= 0 {
			return
		}
		if l := len(out); l > 0 && out[l-1].Kind == k && out[l-1].End() == off {
			out[l-1].Len += n
			return
		}
		out = append(out, image.Extent{Off: off, Len: n, Kind: k})
	}
	i := 0
	var pos int64
	for _, h := range holes {
		if h.Kind != image.Data {
			continue
		}
		for i < len(merged) && merged[i].Off+merged[i].Len <= h.Off {
			i++
		}
		for j := i; j < len(merged) && merged[j].Off < h.End(); j++ {
			s, e := max(merged[j].Off, h.Off), min(merged[j].Off+merged[j].Len, h.End())
			add(pos, s-pos, image.Zero)
			add(s, e-s, image.Data)
			pos = e
		}
	}
	add(pos, size-pos, image.Zero)
	return out
}
