// Package gpt reads and writes GUID Partition Tables as specified in
// chapter 5 of the UEFI Specification (version 2.10).
//
// Scope: logical sector sizes of 512 and 4096 bytes (probed in that order:
// a header at byte 512, then at byte 4096); the primary header and entry
// array and the backup copies at the end of the disk; CRC32 (IEEE) checks of
// headers and arrays; UTF-16LE partition names; GUIDs in their on-disk
// mixed-endian form, printed in lowercase canonical form; attribute bits;
// protective and hybrid MBRs. When the primary header or array is damaged
// the backup is used and a warning says so; disagreement between the two
// copies and a backup that is not at the end of the image are warnings.
//
// Write writes the protective (or existing hybrid) MBR, the primary header
// and array, and the backup array and header at the last sector of the
// image size it is given, so that a table moved onto a shorter or longer
// image is valid.
//
// Limits: entry sizes must be a multiple of 128 bytes up to 4096 bytes and
// the entry array at most 4 MiB. Bytes of entries beyond the 128 defined
// ones are kept on Write only for the slots that are still in use.
//
// # Security
//
// The image is untrusted. Header fields are validated (signature, size,
// CRC, its own LBA) and the entry count and size are capped before any
// allocation; every loop is bounded by the capped entry count. Read reads
// at most a few sectors and one array of at most 4 MiB per header, and never
// panics on any input.
package gpt

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"unicode/utf16"

	"imgtool/part/mbr"
)

// Errors, wrapped in a *FormatError where a structure is at fault.
var (
	// ErrNoHeader means neither a valid primary nor a valid backup GPT
	// header was found.
	ErrNoHeader = errors.New("gpt: no valid GPT header")
	// ErrNotProtective means the MBR is a valid MBR without a 0xEE entry:
	// the disk is partitioned with MBR, whatever stale GPT may remain.
	ErrNotProtective = errors.New("gpt: MBR has no GPT protective entry")
	// ErrDoesNotFit is returned by Write when a partition would end past
	// the last usable sector of the target size.
	ErrDoesNotFit = errors.New("gpt: partitions do not fit")
	// ErrInvalid is returned by Write for a table that cannot be encoded.
	ErrInvalid = errors.New("gpt: invalid table")
)

// FormatError reports a malformed structure and the byte offset in the
// image where it was found.
type FormatError struct {
	Off int64  // byte offset in the image
	Msg string // what is wrong
	Err error  // sentinel, for errors.Is; may be nil
}

// Error implements error.
func (e *FormatError) Error() string {
	return fmt.Sprintf("gpt: %s at offset %d (0x%x)", e.Msg, e.Off, e.Off)
}

// Unwrap returns the sentinel error.
func (e *FormatError) Unwrap() error { return e.Err }

// Partition is one used entry of the array.
type Partition struct {
	Number     int        // the entry's index in the array + 1, as Linux numbers it
	Type       GUID       // partition type
	GUID       GUID       // unique partition GUID (Linux PARTUUID)
	FirstLBA   uint64     // first sector
	LastLBA    uint64     // last sector, inclusive
	Attributes Attributes // attribute bits
	Name       string     // decoded from UTF-16LE
}

// Sectors returns the partition's length in sectors.
func (p Partition) Sectors() uint64 { return p.LastLBA - p.FirstLBA + 1 }

// Table is a decoded GPT.
type Table struct {
	SectorSize     int  // 512 or 4096
	DiskGUID       GUID // disk GUID
	FirstUsableLBA uint64
	LastUsableLBA  uint64
	NumEntries     uint32 // entries in the array
	EntrySize      uint32 // bytes per entry
	// PrimaryEntryLBA is where the primary array starts (normally 2).
	PrimaryEntryLBA uint64
	// Header is the header that was used (the backup's when UsedBackup).
	Header Header
	// UsedBackup is set when the primary header or array was damaged and
	// the backup was used.
	UsedBackup bool
	// Partitions lists the used entries in array order.
	Partitions []Partition
	// MBR is the protective or hybrid MBR; nil when the first sector has
	// no MBR signature.
	MBR *mbr.Table
	// Hybrid is set when the MBR holds entries besides the 0xEE one.
	Hybrid bool
	// Warnings describes damage that did not stop decoding.
	Warnings []string

	array  []byte // the entry array as read
	altLBA uint64 // where the backup header was expected when read
}

// maxWarnings caps Table.Warnings: a hostile array can hold thousands of
// broken entries.
const maxWarnings = 32

func (t *Table) warnf(format string, args ...any) {
	switch {
	case len(t.Warnings) < maxWarnings:
		t.Warnings = append(t.Warnings, fmt.Sprintf(format, args...))
	case len(t.Warnings) == maxWarnings:
		t.Warnings = append(t.Warnings, "further warnings omitted")
	}
}

// candidate is a validated header with its entry array.
type candidate struct {
	hdr   Header
	array []byte
}

// readAt reads exactly len(b) bytes at off, treating a short read at the
// end of the image as io.ErrUnexpectedEOF.
func readAt(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("gpt: reading %d bytes at offset %d: %w", len(b), off, err)
}

// readHeader reads and validates the header at sector lba and its array.
func readHeader(r io.ReaderAt, size int64, ss int, lba uint64) (*candidate, error) {
	total := uint64(size) / uint64(ss)
	if lba >= total {
		return nil, &FormatError{Off: size, Msg: fmt.Sprintf("header LBA %d is past the end of the image", lba), Err: ErrNoHeader}
	}
	off := int64(lba) * int64(ss)
	b := make([]byte, ss)
	if err := readAt(r, b, off); err != nil {
		return nil, err
	}
	var h Header
	if _, err := binary.Decode(b, binary.LittleEndian, &h); err != nil {
		return nil, err
	}
	bad := func(field int64, format string, args ...any) (*candidate, error) {
		return nil, &FormatError{Off: off + field, Msg: fmt.Sprintf(format, args...), Err: ErrNoHeader}
	}
	if h.Signature != Signature {
		return bad(0, "no \"EFI PART\" signature in the header at LBA %d", lba)
	}
	if h.HeaderSize < HeaderSize || h.HeaderSize > uint32(ss) {
		return bad(12, "header size %d out of range", h.HeaderSize)
	}
	c := slices.Clone(b[:h.HeaderSize])
	clear(c[16:20])
	if crc := crc32.ChecksumIEEE(c); crc != h.HeaderCRC32 {
		return bad(16, "header CRC is 0x%08x, computed 0x%08x", h.HeaderCRC32, crc)
	}
	if h.MyLBA != lba {
		return bad(24, "header at LBA %d says it is at LBA %d", lba, h.MyLBA)
	}
	if h.FirstUsableLBA > h.LastUsableLBA {
		return bad(40, "first usable LBA %d is after last usable LBA %d", h.FirstUsableLBA, h.LastUsableLBA)
	}
	es, n := h.SizeOfPartitionEntry, h.NumberOfPartitionEntries
	if es < MinEntrySize || es > MaxEntrySize || es%MinEntrySize != 0 {
		return bad(84, "partition entry size %d (want a multiple of 128 up to 4096)", es)
	}
	if uint64(n)*uint64(es) > MaxArrayBytes {
		return bad(80, "%d entries of %d bytes exceed the %d-byte limit", n, es, MaxArrayBytes)
	}
	arrLen := int64(n) * int64(es)
	if h.PartitionEntryLBA >= total || int64(h.PartitionEntryLBA)*int64(ss) > size-arrLen {
		return bad(72, "partition entry array at LBA %d (%d bytes) is past the end of the image", h.PartitionEntryLBA, arrLen)
	}
	arrOff := int64(h.PartitionEntryLBA) * int64(ss)
	if arrLen > 0 && arrOff < off+int64(ss) && off < arrOff+arrLen {
		return bad(72, "partition entry array at LBA %d overlaps its header", h.PartitionEntryLBA)
	}
	arr := make([]byte, arrLen)
	if err := readAt(r, arr, arrOff); err != nil {
		return nil, err
	}
	if crc := crc32.ChecksumIEEE(arr); crc != h.PartitionEntryArrayCRC32 {
		return nil, &FormatError{Off: arrOff, Msg: fmt.Sprintf("partition entry array CRC is 0x%08x, header says 0x%08x", crc, h.PartitionEntryArrayCRC32), Err: ErrNoHeader}
	}
	return &candidate{hdr: h, array: arr}, nil
}

// Read decodes the GPT of an image of size bytes.
//
// The first sector must hold an MBR with a 0xEE entry (protective or
// hybrid), or no MBR signature at all; in the latter case only the primary
// header is looked for. A valid MBR without a 0xEE entry gives
// ErrNotProtective. When no valid header is found the error wraps
// ErrNoHeader and names the offset of the primary header.
func Read(r io.ReaderAt, size int64) (*Table, error) {
	if size < 2*512 {
		return nil, &FormatError{Off: 0, Msg: fmt.Sprintf("image of %d bytes is too small for a GPT", size), Err: ErrNoHeader}
	}
	m, merr := mbr.Read(r, size, 512)
	switch {
	case merr == nil:
		if !m.Protective() {
			return nil, &FormatError{Off: mbr.EntriesOff, Msg: "MBR without a 0xEE entry", Err: ErrNotProtective}
		}
	case errors.Is(merr, mbr.ErrNoSignature), errors.Is(merr, mbr.ErrNotPartitionTable):
		m = nil
	default:
		return nil, merr
	}

	var errs []error
	var primary *candidate
	ss := 0
	for _, s := range []int{512, 4096} {
		c, err := readHeader(r, size, s, 1)
		if err == nil {
			primary, ss = c, s
			break
		}
		errs = append(errs, fmt.Errorf("%d-byte sectors: %w", s, err))
	}
	t := &Table{}
	var used *candidate
	if primary != nil {
		used = primary
		t.SectorSize = ss
		t.altLBA = primary.hdr.AlternateLBA
		last := uint64(size)/uint64(ss) - 1
		backupLBA := primary.hdr.AlternateLBA
		if backupLBA > last || backupLBA < 2 {
			backupLBA = last
		}
		if m != nil { // without a protective MBR, this is a best effort
			b, err := readHeader(r, size, ss, backupLBA)
			switch {
			case err != nil:
				t.warnf("backup GPT header at LBA %d is corrupt or missing (%v); rewrite the table (sgdisk -e) to repair", backupLBA, err)
			default:
				if d := disagree(primary.hdr, b.hdr); d != "" {
					t.warnf("primary and backup GPT headers disagree (%s); the primary is used", d)
				}
			}
		}
		if primary.hdr.AlternateLBA != last {
			t.warnf("backup GPT header is expected at LBA %d but the image ends at LBA %d (the image was resized); run sgdisk -e to move it to the end",
				primary.hdr.AlternateLBA, last)
		}
	} else if m != nil {
		for _, s := range []int{512, 4096} {
			last := uint64(size)/uint64(s) - 1
			c, err := readHeader(r, size, s, last)
			if err != nil {
				errs = append(errs, fmt.Errorf("backup, %d-byte sectors: %w", s, err))
				continue
			}
			used, ss = c, s
			t.SectorSize, t.UsedBackup, t.altLBA = s, true, last
			t.warnf("primary GPT header at LBA 1 is corrupt; using the backup at LBA %d; rewrite the table (sgdisk -e) to repair", last)
			break
		}
	}
	if used == nil {
		return nil, &FormatError{Off: 512, Msg: "no valid GPT header", Err: errors.Join(append([]error{ErrNoHeader}, errs...)...)}
	}
	if m != nil && ss != 512 {
		if m2, err := mbr.Read(r, size, ss); err == nil {
			m = m2
		}
	}
	h := used.hdr
	t.DiskGUID = h.DiskGUID
	t.FirstUsableLBA, t.LastUsableLBA = h.FirstUsableLBA, h.LastUsableLBA
	t.NumEntries, t.EntrySize = h.NumberOfPartitionEntries, h.SizeOfPartitionEntry
	t.Header = h
	t.PrimaryEntryLBA = h.PartitionEntryLBA
	if t.UsedBackup {
		t.PrimaryEntryLBA = 2
	}
	t.array = used.array
	t.MBR = m
	t.Hybrid = m != nil && m.Hybrid()
	t.decodeEntries()
	return t, nil
}

// disagree compares the fields the two headers must share.
func disagree(p, b Header) string {
	switch {
	case p.DiskGUID != b.DiskGUID:
		return "disk GUID"
	case p.NumberOfPartitionEntries != b.NumberOfPartitionEntries || p.SizeOfPartitionEntry != b.SizeOfPartitionEntry:
		return "entry count or size"
	case p.PartitionEntryArrayCRC32 != b.PartitionEntryArrayCRC32:
		return "partition entries"
	case p.FirstUsableLBA != b.FirstUsableLBA || p.LastUsableLBA != b.LastUsableLBA:
		return "usable range"
	case b.AlternateLBA != p.MyLBA || p.AlternateLBA != b.MyLBA:
		return "alternate LBA"
	}
	return ""
}

func (t *Table) decodeEntries() {
	es := int(t.EntrySize)
	for i := 0; i < int(t.NumEntries); i++ {
		var e Entry
		if _, err := binary.Decode(t.array[i*es:i*es+MinEntrySize], binary.LittleEndian, &e); err != nil {
			continue
		}
		if e.PartitionTypeGUID.IsZero() {
			continue
		}
		if e.StartingLBA > e.EndingLBA {
			t.warnf("partition %d ends (LBA %d) before it starts (LBA %d); ignored", i+1, e.EndingLBA, e.StartingLBA)
			continue
		}
		p := Partition{Number: i + 1, Type: e.PartitionTypeGUID, GUID: e.UniquePartitionGUID,
			FirstLBA: e.StartingLBA, LastLBA: e.EndingLBA, Attributes: e.Attributes, Name: decodeName(e.PartitionName[:])}
		if p.FirstLBA < t.FirstUsableLBA || p.LastLBA > t.LastUsableLBA {
			t.warnf("partition %d (LBA %d–%d) lies outside the usable range %d–%d", p.Number, p.FirstLBA, p.LastLBA, t.FirstUsableLBA, t.LastUsableLBA)
		}
		t.Partitions = append(t.Partitions, p)
	}
	// Overlaps, found in O(n log n): sorted by start, a partition overlaps
	// an earlier one when it starts before the furthest end seen so far.
	byStart := slices.Clone(t.Partitions)
	slices.SortStableFunc(byStart, func(a, b Partition) int { return cmp.Compare(a.FirstLBA, b.FirstLBA) })
	for i := 1; i < len(byStart); i++ {
		if byStart[i].FirstLBA <= byStart[i-1].LastLBA {
			t.warnf("partitions %d and %d overlap", byStart[i-1].Number, byStart[i].Number)
		}
		if byStart[i].LastLBA < byStart[i-1].LastLBA {
			byStart[i].LastLBA, byStart[i].Number = byStart[i-1].LastLBA, byStart[i-1].Number
		}
	}
}

func decodeName(u []uint16) string {
	n := slices.Index(u, 0)
	if n < 0 {
		n = len(u)
	}
	return string(utf16.Decode(u[:n]))
}

func encodeName(s string) ([nameUnits]uint16, error) {
	var out [nameUnits]uint16
	u := utf16.Encode([]rune(s))
	if len(u) > nameUnits {
		return out, fmt.Errorf("%w: name %q is longer than %d UTF-16 units", ErrInvalid, s, nameUnits)
	}
	copy(out[:], u)
	return out, nil
}

// Write writes the table onto an image of size bytes: the MBR (the hybrid
// MBR and boot code kept when present, else a protective MBR whose 0xEE
// entry spans the image), the primary header and array at LBA 1 and
// PrimaryEntryLBA, and the backup array and header ending at the last
// sector of size. AlternateLBA, LastUsableLBA and both CRCs are
// recomputed; the disk and partition GUIDs are kept. It fails with
// ErrDoesNotFit when a partition would end past the new last usable LBA.
// The table itself is not modified.
func (t *Table) Write(w io.WriterAt, size int64) error {
	ss := int64(t.SectorSize)
	if ss != 512 && ss != 4096 {
		return fmt.Errorf("%w: sector size %d", ErrInvalid, ss)
	}
	es, n := int64(t.EntrySize), int64(t.NumEntries)
	if es < MinEntrySize || es > MaxEntrySize || es%MinEntrySize != 0 || n*es > MaxArrayBytes {
		return fmt.Errorf("%w: %d entries of %d bytes", ErrInvalid, n, es)
	}
	arrLen := n * es
	arrSectors := (arrLen + ss - 1) / ss
	total := size / ss
	entryLBA := int64(t.PrimaryEntryLBA)
	if entryLBA < 2 || entryLBA > total {
		entryLBA = 2
	}
	if int64(t.FirstUsableLBA) < entryLBA+arrSectors || t.FirstUsableLBA > math.MaxInt64/uint64(ss) {
		return fmt.Errorf("%w: first usable LBA %d overlaps the primary array (LBA %d–%d)", ErrInvalid, t.FirstUsableLBA, entryLBA, entryLBA+arrSectors-1)
	}
	last := total - 1
	backupArrLBA := last - arrSectors
	lastUsable := backupArrLBA - 1
	if lastUsable < int64(t.FirstUsableLBA) {
		return fmt.Errorf("%w: an image of %d bytes has no room for partitions", ErrDoesNotFit, size)
	}
	arr := make([]byte, arrLen)
	if int64(len(t.array)) == arrLen {
		copy(arr, t.array)
	}
	inUse := make(map[int]bool)
	for _, p := range t.Partitions {
		if p.Number < 1 || int64(p.Number) > n || inUse[p.Number] {
			return fmt.Errorf("%w: partition number %d (the array has %d entries)", ErrInvalid, p.Number, n)
		}
		inUse[p.Number] = true
		if p.FirstLBA > p.LastLBA || p.FirstLBA < t.FirstUsableLBA {
			return fmt.Errorf("%w: partition %d spans LBA %d–%d", ErrInvalid, p.Number, p.FirstLBA, p.LastLBA)
		}
		if p.LastLBA > uint64(lastUsable) {
			return fmt.Errorf("%w: partition %d ends at LBA %d, past the last usable LBA %d of a %d-byte image",
				ErrDoesNotFit, p.Number, p.LastLBA, lastUsable, size)
		}
		name, err := encodeName(p.Name)
		if err != nil {
			return err
		}
		e := Entry{PartitionTypeGUID: p.Type, UniquePartitionGUID: p.GUID, StartingLBA: p.FirstLBA, EndingLBA: p.LastLBA,
			Attributes: p.Attributes, PartitionName: name}
		off := int64(p.Number-1) * es
		if _, err := binary.Encode(arr[off:off+MinEntrySize], binary.LittleEndian, &e); err != nil {
			return err
		}
	}
	for i := int64(0); i < n; i++ {
		if !inUse[int(i)+1] {
			clear(arr[i*es : (i+1)*es])
		}
	}
	arrCRC := crc32.ChecksumIEEE(arr)

	h := Header{Signature: Signature, Revision: t.Header.Revision, HeaderSize: HeaderSize,
		FirstUsableLBA: t.FirstUsableLBA, LastUsableLBA: uint64(lastUsable), DiskGUID: t.DiskGUID,
		NumberOfPartitionEntries: uint32(n), SizeOfPartitionEntry: uint32(es), PartitionEntryArrayCRC32: arrCRC}
	if h.Revision == 0 {
		h.Revision = Revision1
	}
	primary, backup := h, h
	primary.MyLBA, primary.AlternateLBA, primary.PartitionEntryLBA = 1, uint64(last), uint64(entryLBA)
	backup.MyLBA, backup.AlternateLBA, backup.PartitionEntryLBA = uint64(last), 1, uint64(backupArrLBA)

	pm, err := t.protectiveMBR(uint64(total))
	if err != nil {
		return err
	}
	writes := []struct {
		what string
		b    []byte
		lba  int64
	}{
		{"backup partition entry array", arr, backupArrLBA},
		{"backup header", encodeHeader(backup, ss), last},
		{"primary partition entry array", arr, entryLBA},
		{"primary header", encodeHeader(primary, ss), 1},
	}
	for _, wr := range writes {
		if _, err := w.WriteAt(wr.b, wr.lba*ss); err != nil {
			return fmt.Errorf("gpt: writing the %s at LBA %d: %w", wr.what, wr.lba, err)
		}
	}
	if err := pm.Write(w); err != nil {
		return fmt.Errorf("gpt: writing the protective MBR: %w", err)
	}
	return nil
}

// encodeHeader returns a full sector holding h with its CRC set.
func encodeHeader(h Header, ss int64) []byte {
	h.HeaderCRC32 = 0
	b := make([]byte, ss)
	binary.Encode(b, binary.LittleEndian, &h)
	h.HeaderCRC32 = crc32.ChecksumIEEE(b[:HeaderSize])
	binary.LittleEndian.PutUint32(b[16:], h.HeaderCRC32)
	return b
}

// protectiveMBR returns the MBR to write for a disk of total sectors: the
// existing one with its 0xEE entry resized when it spanned the old disk,
// or a new protective MBR.
func (t *Table) protectiveMBR(total uint64) (*mbr.Table, error) {
	span := min(total-1, protectiveMaxLBAs)
	if t.MBR == nil {
		return &mbr.Table{SectorSize: t.SectorSize, Partitions: []mbr.Partition{
			{Number: 1, Type: mbr.GPTProtect, Start: 1, Sectors: span}}}, nil
	}
	m := *t.MBR
	m.SectorSize = t.SectorSize
	m.Partitions = slices.Clone(t.MBR.Partitions)
	for i := range m.Partitions {
		p := &m.Partitions[i]
		if p.Logical || p.Type != mbr.GPTProtect {
			continue
		}
		switch {
		case !t.Hybrid:
			p.Start, p.Sectors = 1, span
		case p.End() >= min(t.altLBA+1, protectiveMaxLBAs) && p.Start < total:
			// A hybrid 0xEE entry that ran to the end of the old disk
			// runs to the end of the new one.
			p.Sectors = min(total-p.Start, protectiveMaxLBAs)
		}
	}
	for _, p := range m.Partitions {
		if p.End() > total {
			return nil, fmt.Errorf("%w: hybrid MBR partition %d ends past the end of a %d-sector image", ErrDoesNotFit, p.Number, total)
		}
	}
	return &m, nil
}

// TypeName returns the well-known name of the partition's type, or "".
func (p Partition) TypeName() string { return p.Type.Name() }
