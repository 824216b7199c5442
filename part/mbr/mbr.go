// Package mbr reads and writes MBR (DOS) partition tables: the four primary
// entries of the Master Boot Record and the chain of Extended Boot Records
// (EBRs) that describes logical partitions.
//
// Scope: the classic IBM PC layout as Linux and util-linux read it. The
// disk identifier, the boot flag, primary, extended and logical partitions
// are decoded; logical partitions are numbered 5, 6, … in chain order, as
// Linux numbers them. Sector sizes of 512 and 4096 bytes are supported; the
// record itself always occupies the first 512 bytes of the first sector.
// Write rewrites the MBR and the EBR chain and keeps the boot code and every
// byte it does not own. CHS fields are computed as sfdisk computes them
// (255 heads, 63 sectors per track, and the 1023/254/63 "LBA only" value
// beyond 1024 cylinders).
//
// Limits: only the first extended partition of the MBR is followed; an EBR
// holds one logical partition and one link, as every partitioning tool
// writes them. Chains longer than 256 EBRs are cut with a warning. Disk
// managers (OnTrack, EZ-Drive), AIX and BSD disklabels inside a slice are
// not decoded.
//
// A sector that ends in 0x55AA is not necessarily a partition table: the
// boot sector of a FAT, NTFS or exFAT filesystem written on an unpartitioned
// disk ends the same way. Read reports ErrNotPartitionTable when the sector
// has a plausible filesystem boot-sector header (jump instruction and BIOS
// parameter block) and its partition entries are empty or invalid, and when
// any entry has a status byte other than 0x00 or 0x80.
//
// # Security
//
// The image is untrusted. Read reads a bounded number of sectors (one per
// EBR, at most 256 EBRs), detects loops in the EBR chain, never allocates
// by a size taken from the image, and reports entries that point outside
// the image instead of failing. It never panics on any input.
package mbr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Errors returned (wrapped in a *FormatError) by Read.
var (
	// ErrNoSignature means the first sector does not end in 0x55AA, or the
	// image is shorter than one sector.
	ErrNoSignature = errors.New("mbr: no 0x55AA boot signature")
	// ErrNotPartitionTable means the sector ends in 0x55AA but is the
	// boot sector of a filesystem, or has invalid entries.
	ErrNotPartitionTable = errors.New("mbr: not a partition table")
	// ErrInvalid is wrapped by Write when the table cannot be written as
	// it is (overlapping numbers, values that do not fit, a logical
	// partition outside its extended partition, …).
	ErrInvalid = errors.New("mbr: invalid table")
)

// FormatError reports a malformed record and the byte offset in the image
// where it was found.
type FormatError struct {
	Off int64  // byte offset in the image
	Msg string // what is wrong
	Err error  // sentinel, for errors.Is; may be nil
}

// Error implements error.
func (e *FormatError) Error() string {
	return fmt.Sprintf("mbr: %s at offset %d (0x%x)", e.Msg, e.Off, e.Off)
}

// Unwrap returns the sentinel error.
func (e *FormatError) Unwrap() error { return e.Err }

// Partition is one decoded partition. Sector numbers are in units of the
// table's SectorSize and absolute (from the start of the disk).
type Partition struct {
	Number  int    // 1–4 for primary entries (their slot + 1), 5… for logical
	Status  uint8  // 0x80 bootable, 0x00 not
	Type    Type   // partition type byte
	Start   uint64 // first sector
	Sectors uint64 // length in sectors
	Logical bool   // described by an EBR
	// EBR is the sector of the Extended Boot Record describing a logical
	// partition; 0 for primary entries.
	EBR uint64
	// OutOfRange is set when the partition extends past the end of the
	// image (or past its extended partition, for a logical one).
	OutOfRange bool
}

// Bootable reports whether the boot flag (status 0x80) is set.
func (p Partition) Bootable() bool { return p.Status == StatusActive }

// End returns the sector just past the partition.
func (p Partition) End() uint64 { return p.Start + p.Sectors }

// Extended reports whether the partition is an extended container.
func (p Partition) Extended() bool { return !p.Logical && p.Type.IsExtended() }

// Table is a decoded MBR partition table.
type Table struct {
	// SectorSize is the logical sector size the LBA fields count in: 512
	// or 4096.
	SectorSize int
	// DiskID is the 32-bit disk signature at offset 440.
	DiskID uint32
	// Sector is the MBR as read. Write keeps its boot code and reserved
	// bytes and replaces the disk signature and the entries.
	Sector RawMBR
	// Partitions lists primary entries in slot order, then logical
	// partitions in chain order. Empty slots are left out.
	Partitions []Partition
	// Warnings describes damage that did not stop decoding: a broken or
	// looping EBR chain, partitions past the end of the image, ….
	Warnings []string

	ebrs map[uint64]RawMBR // EBR sectors as read, by sector number
}

// Protective reports whether the MBR holds a GPT protective entry (type
// 0xEE): the disk is partitioned with GPT.
func (t *Table) Protective() bool {
	for _, p := range t.Partitions {
		if !p.Logical && p.Type == GPTProtect {
			return true
		}
	}
	return false
}

// Hybrid reports whether the MBR holds a 0xEE entry together with other
// primary entries (a hybrid MBR mirroring some GPT partitions).
func (t *Table) Hybrid() bool {
	ee, other := false, false
	for _, p := range t.Partitions {
		switch {
		case p.Logical:
		case p.Type == GPTProtect:
			ee = true
		default:
			other = true
		}
	}
	return ee && other
}

// Extended returns the extended partition whose chain was followed, or nil.
func (t *Table) Extended() *Partition {
	for i := range t.Partitions {
		if t.Partitions[i].Extended() {
			return &t.Partitions[i]
		}
	}
	return nil
}

func (t *Table) warnf(format string, args ...any) {
	t.Warnings = append(t.Warnings, fmt.Sprintf(format, args...))
}

// Decode decodes a 512-byte record. It checks nothing.
func Decode(b []byte) (RawMBR, error) {
	var m RawMBR
	if len(b) < MinSectorSize {
		return m, &FormatError{Off: 0, Msg: fmt.Sprintf("record is %d bytes, want 512", len(b)), Err: ErrNoSignature}
	}
	_, err := binary.Decode(b[:MinSectorSize], binary.LittleEndian, &m)
	return m, err
}

// Encode returns the 512 bytes of m.
func (m *RawMBR) Encode() []byte {
	b, _ := binary.Append(make([]byte, 0, MinSectorSize), binary.LittleEndian, m)
	return b
}

// readSector reads the 512-byte record at byte offset off.
func readSector(r io.ReaderAt, size, off int64) ([]byte, error) {
	if off < 0 || off > size-MinSectorSize {
		return nil, &FormatError{Off: off, Msg: "record past the end of the image", Err: io.ErrUnexpectedEOF}
	}
	b := make([]byte, MinSectorSize)
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return b, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("mbr: reading the record at offset %d: %w", off, err)
}

// Read decodes the MBR partition table of an image of size bytes whose
// logical sectors are sectorSize bytes (512 or 4096).
//
// It returns a *FormatError wrapping ErrNoSignature when there is no 0x55AA
// signature and ErrNotPartitionTable when the sector is a filesystem boot
// sector or has invalid entries. Problems in the EBR chain and partitions
// past the end of the image are reported in Table.Warnings.
func Read(r io.ReaderAt, size int64, sectorSize int) (*Table, error) {
	if sectorSize != 512 && sectorSize != 4096 {
		return nil, fmt.Errorf("mbr: sector size %d not supported (512 or 4096)", sectorSize)
	}
	if size < MinSectorSize {
		return nil, &FormatError{Off: 0, Msg: fmt.Sprintf("image of %d bytes is shorter than one sector", size), Err: ErrNoSignature}
	}
	b, err := readSector(r, size, 0)
	if err != nil {
		return nil, err
	}
	raw, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if raw.Signature != BootSignature {
		return nil, &FormatError{Off: BootSignatureOff, Msg: fmt.Sprintf("boot signature is 0x%04x, want 0xaa55", raw.Signature), Err: ErrNoSignature}
	}
	total := uint64(size) / uint64(sectorSize)
	for i, e := range raw.Entries {
		if e.Status != StatusActive && e.Status != StatusInactive {
			return nil, &FormatError{Off: int64(EntriesOff + i*EntrySize), Msg: fmt.Sprintf("entry %d has status byte 0x%02x (want 0x00 or 0x80)", i+1, e.Status), Err: ErrNotPartitionTable}
		}
	}
	if LooksLikeBootSector(b) {
		if off, why := checkEntries(raw, total); off >= 0 {
			return nil, &FormatError{Off: off, Msg: "filesystem boot sector (" + why + ")", Err: ErrNotPartitionTable}
		}
	}

	t := &Table{SectorSize: sectorSize, DiskID: raw.DiskSignature, Sector: raw}
	var ext *Partition
	for i, e := range raw.Entries {
		if e.IsEmpty() {
			continue
		}
		p := Partition{Number: i + 1, Status: e.Status, Type: e.Type, Start: uint64(e.StartLBA), Sectors: uint64(e.Sectors)}
		if p.End() > total {
			p.OutOfRange = true
		}
		t.Partitions = append(t.Partitions, p)
		if ext == nil && e.Type.IsExtended() {
			q := p
			ext = &q
		}
	}
	if ext != nil {
		t.readChain(r, size, *ext, total)
	}
	return t, nil
}

// checkEntries looks for a reason why the four entries cannot be a
// partition table: it returns the offset of the first bad entry and why, or
// -1 when the entries are a plausible non-empty table.
func checkEntries(raw RawMBR, total uint64) (int64, string) {
	type span struct{ start, end uint64 }
	var spans []span
	for i, e := range raw.Entries {
		off := int64(EntriesOff + i*EntrySize)
		if e.Status != StatusActive && e.Status != StatusInactive {
			return off, "invalid status byte"
		}
		if e.IsEmpty() {
			continue
		}
		s := span{uint64(e.StartLBA), uint64(e.StartLBA) + uint64(e.Sectors)}
		if s.start == 0 {
			return off, "entry starts at sector 0"
		}
		if s.end > total {
			return off, "entry past the end of the image"
		}
		for _, o := range spans {
			if s.start < o.end && o.start < s.end {
				return off, "overlapping entries"
			}
		}
		spans = append(spans, s)
	}
	if len(spans) == 0 {
		return EntriesOff, "no partition entries"
	}
	return -1, ""
}

// readChain follows the EBR chain of the extended partition ext.
func (t *Table) readChain(r io.ReaderAt, size int64, ext Partition, total uint64) {
	ss := uint64(t.SectorSize)
	t.ebrs = make(map[uint64]RawMBR)
	next := 5
	cur := ext.Start
	for n := 0; ; n++ {
		if n >= maxChainLength {
			t.warnf("EBR chain longer than %d records; stopped at sector %d", maxChainLength, cur)
			return
		}
		if _, seen := t.ebrs[cur]; seen {
			t.warnf("EBR chain loops back to sector %d; stopped", cur)
			return
		}
		if cur >= total || cur > math.MaxInt64/ss {
			t.warnf("EBR at sector %d is past the end of the image", cur)
			return
		}
		off := int64(cur * ss)
		b, err := readSector(r, size, off)
		if err != nil {
			t.warnf("cannot read the EBR at sector %d: %v", cur, err)
			return
		}
		raw, _ := Decode(b)
		if raw.Signature != BootSignature {
			if n > 0 || !bytes.Equal(b, make([]byte, len(b))) {
				t.warnf("EBR at sector %d (offset %d) has no 0x55AA signature; chain stopped", cur, off)
			}
			return
		}
		t.ebrs[cur] = raw
		var data, link *RawEntry
		for i := range raw.Entries {
			e := &raw.Entries[i]
			if e.IsEmpty() {
				continue
			}
			if e.Type.IsExtended() {
				if link == nil {
					link = e
				}
			} else if data == nil {
				data = e
			}
		}
		if data != nil {
			p := Partition{Number: next, Status: data.Status, Type: data.Type, Start: cur + uint64(data.StartLBA),
				Sectors: uint64(data.Sectors), Logical: true, EBR: cur}
			next++
			switch {
			case p.End() > total:
				p.OutOfRange = true
			case p.Start < ext.Start || p.End() > ext.End():
				p.OutOfRange = true
				t.warnf("logical partition %d (sectors %d–%d) lies outside its extended partition", p.Number, p.Start, p.End()-1)
			}
			t.Partitions = append(t.Partitions, p)
		}
		if link == nil {
			return
		}
		cur = ext.Start + uint64(link.StartLBA)
		if cur >= ext.End() {
			t.warnf("EBR link at sector %d points to sector %d, outside the extended partition; chain stopped", ext.Start, cur)
			return
		}
	}
}

// LooksLikeBootSector reports whether the 512 bytes of b start like the
// boot sector of a FAT, NTFS or exFAT filesystem: an x86 jump instruction
// followed by a plausible BIOS parameter block.
func LooksLikeBootSector(b []byte) bool {
	if len(b) < MinSectorSize {
		return false
	}
	if !(b[0] == 0xEB && b[2] == 0x90) && b[0] != 0xE9 {
		return false
	}
	oem := string(b[3:11])
	if oem == "EXFAT   " {
		return true
	}
	bps := binary.LittleEndian.Uint16(b[11:])
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 {
		return false
	}
	spc := b[13]
	if oem == "NTFS    " {
		// NTFS stores large cluster sizes as a negative shift.
		return spc != 0 && (spc&(spc-1) == 0 || spc >= 0xF4)
	}
	if spc == 0 || spc&(spc-1) != 0 {
		return false
	}
	reserved := binary.LittleEndian.Uint16(b[14:])
	fats := b[16]
	return reserved > 0 && (fats == 1 || fats == 2)
}

// CHSOf returns the CHS address of sector lba as sfdisk computes it for an
// image file: 255 heads and 63 sectors per track, and the maximum value
// 1023/254/63 for sectors beyond 1024 cylinders ("LBA only").
func CHSOf(lba uint64) CHS {
	const spc = defaultHeads * defaultSectorsPer
	if lba/spc >= maxCylinders {
		lba = spc*maxCylinders - 1
	}
	s := lba%defaultSectorsPer + 1
	lba /= defaultSectorsPer
	h := lba % defaultHeads
	c := lba / defaultHeads
	return CHS{byte(h), byte(s) | byte((c>>2)&0xc0), byte(c)}
}

// entry builds a raw entry for sectors [start, start+sectors) whose LBA
// field is start-base.
func entry(status uint8, typ Type, start, sectors, base uint64) RawEntry {
	e := RawEntry{Status: status, Type: typ, StartLBA: uint32(start - base), Sectors: uint32(sectors)}
	e.FirstCHS = CHSOf(start)
	last := start
	if sectors > 0 {
		last = start + sectors - 1
	}
	e.LastCHS = CHSOf(last)
	return e
}

// Write writes the table to w: the MBR in the first sector and, when there
// is an extended partition, one EBR per logical partition at its EBR
// sector. The boot code, the reserved bytes and (for EBRs) the unused
// entries are kept from the sectors read; the disk signature comes from
// DiskID and the entries from Partitions. The first logical partition's EBR
// must be the first sector of the extended partition.
func (t *Table) Write(w io.WriterAt) error {
	if t.SectorSize != 512 && t.SectorSize != 4096 {
		return fmt.Errorf("%w: sector size %d", ErrInvalid, t.SectorSize)
	}
	ss := uint64(t.SectorSize)
	sec := t.Sector
	sec.DiskSignature = t.DiskID
	sec.Entries = [NumEntries]RawEntry{}
	sec.Signature = BootSignature
	var ext *Partition
	var logical []Partition
	used := [NumEntries]bool{}
	for i := range t.Partitions {
		p := &t.Partitions[i]
		if p.Status != StatusActive && p.Status != StatusInactive {
			return fmt.Errorf("%w: partition %d has status 0x%02x", ErrInvalid, p.Number, p.Status)
		}
		if p.Logical {
			logical = append(logical, *p)
			continue
		}
		if p.Number < 1 || p.Number > NumEntries || used[p.Number-1] {
			return fmt.Errorf("%w: primary partition number %d", ErrInvalid, p.Number)
		}
		if p.Start > math.MaxUint32 || p.Sectors > math.MaxUint32 {
			return fmt.Errorf("%w: partition %d does not fit 32-bit sector fields", ErrInvalid, p.Number)
		}
		used[p.Number-1] = true
		sec.Entries[p.Number-1] = entry(p.Status, p.Type, p.Start, p.Sectors, 0)
		if ext == nil && p.Type.IsExtended() {
			ext = p
		}
	}
	if ext != nil && ext.Start == 0 {
		// Its first EBR would be written over the MBR.
		return fmt.Errorf("%w: extended partition %d starts at sector 0, where the MBR is", ErrInvalid, ext.Number)
	}
	if len(logical) > 0 && ext == nil {
		return fmt.Errorf("%w: logical partitions without an extended partition", ErrInvalid)
	}
	if len(logical) > maxChainLength {
		return fmt.Errorf("%w: %d logical partitions (at most %d)", ErrInvalid, len(logical), maxChainLength)
	}
	for i, p := range logical {
		if p.Number != 5+i {
			return fmt.Errorf("%w: logical partition numbered %d, want %d", ErrInvalid, p.Number, 5+i)
		}
		if p.EBR < ext.Start || p.EBR >= p.Start || p.Start-p.EBR > math.MaxUint32 || p.Sectors > math.MaxUint32 ||
			p.End() > ext.End() || p.EBR-ext.Start > math.MaxUint32 {
			return fmt.Errorf("%w: logical partition %d (EBR at sector %d, sectors %d–%d) does not fit its extended partition (sectors %d–%d)",
				ErrInvalid, p.Number, p.EBR, p.Start, p.End()-1, ext.Start, ext.End()-1)
		}
		if i == 0 && p.EBR != ext.Start {
			return fmt.Errorf("%w: the first EBR must be at the start of the extended partition (sector %d), not %d", ErrInvalid, ext.Start, p.EBR)
		}
		if i > 0 && p.EBR < logical[i-1].End() {
			return fmt.Errorf("%w: EBR of logical partition %d at sector %d overlaps partition %d", ErrInvalid, p.Number, p.EBR, p.Number-1)
		}
	}
	if _, err := w.WriteAt(sec.Encode(), 0); err != nil {
		return fmt.Errorf("mbr: writing the MBR: %w", err)
	}
	if ext == nil {
		return nil
	}
	if len(logical) == 0 {
		// An extended partition without logical partitions: an EBR with no
		// entries at its start, so that no stale chain is followed.
		ebr := t.ebrs[ext.Start]
		ebr.Entries[0], ebr.Entries[1] = RawEntry{}, RawEntry{}
		ebr.Signature = BootSignature
		if _, err := w.WriteAt(ebr.Encode(), int64(ext.Start*ss)); err != nil {
			return fmt.Errorf("mbr: writing the EBR at sector %d: %w", ext.Start, err)
		}
		return nil
	}
	for i, p := range logical {
		ebr := t.ebrs[p.EBR]
		ebr.Entries[0] = entry(p.Status, p.Type, p.Start, p.Sectors, p.EBR)
		linkType := ebr.Entries[1].Type
		if !linkType.IsExtended() {
			linkType = ExtendedCHS
		}
		ebr.Entries[1] = RawEntry{}
		if i+1 < len(logical) {
			n := logical[i+1]
			ebr.Entries[1] = entry(StatusInactive, linkType, n.EBR, n.End()-n.EBR, ext.Start)
		}
		ebr.Signature = BootSignature
		if _, err := w.WriteAt(ebr.Encode(), int64(p.EBR*ss)); err != nil {
			return fmt.Errorf("mbr: writing the EBR at sector %d: %w", p.EBR, err)
		}
	}
	return nil
}
