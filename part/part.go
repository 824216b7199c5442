// Package part reads the partition table of a disk image, whatever its
// kind, and hands out each partition as a section of the image.
//
// Read recognises a GUID Partition Table (512- or 4096-byte logical
// sectors; the MBR must be protective or hybrid, or absent), then an MBR
// (DOS) table with its logical partitions, and otherwise reports no table:
// a bare filesystem or an empty image is one pseudo-partition spanning the
// whole image. The details of each format, and writing, live in the
// subpackages part/mbr and part/gpt; Table keeps their decoded tables.
//
// Partitions are numbered as Linux numbers them: GPT entries by their index
// in the array, MBR primary entries 1–4 by slot, logical partitions from 5
// in chain order. UUIDs are what Linux shows as PARTUUID.
//
// Damage that does not prevent reading (a corrupt primary GPT header with a
// good backup, a partition running past the end of a truncated image, a
// broken EBR chain) is reported in Table.Warnings rather than as an error.
//
// # Security
//
// The image is untrusted. The subpackages bound every read and allocation
// by validated sizes and never panic; Read adds no allocation of its own
// beyond one Partition per decoded entry. Section clips every partition to
// the image, and the writer returned by Partition.WriterAt refuses writes
// outside the partition.
package part

import (
	"errors"
	"fmt"
	"io"

	"imgtool/part/gpt"
	"imgtool/part/mbr"
)

// Kind is the kind of partition table.
type Kind uint8

// Kinds of partition table.
const (
	None Kind = iota // no partition table: the whole image is one filesystem (or nothing)
	MBR              // an MBR (DOS) partition table
	GPT              // a GUID Partition Table
)

// String returns "none", "mbr" or "gpt".
func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case MBR:
		return "mbr"
	case GPT:
		return "gpt"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// ErrInvalidSize is returned for a negative image size.
var ErrInvalidSize = errors.New("part: invalid image size")

// FormatError reports a malformed structure and the byte offset in the
// image where it was found. The subpackages' own *FormatError values are
// wrapped unchanged and can be found with errors.As.
type FormatError struct {
	Off int64  // byte offset in the image
	Msg string // what is wrong
	Err error  // underlying error or sentinel; may be nil
}

// Error implements error.
func (e *FormatError) Error() string {
	s := fmt.Sprintf("part: %s at offset %d", e.Msg, e.Off)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *FormatError) Unwrap() error { return e.Err }

// Table is the partition table of an image.
type Table struct {
	Kind       Kind
	SectorSize int         // 512 or 4096
	DiskID     string      // MBR: 8 lowercase hex digits ("1234abcd"); GPT: lowercase GUID; None: ""
	Partitions []Partition // in number order
	Warnings   []string    // a damaged primary GPT, a partition past the end of the image, …
	MBR        *mbr.Table  // the MBR (also the protective or hybrid one under a GPT); nil for None
	GPT        *gpt.Table  // nil unless Kind == GPT
	Hybrid     bool        // GPT with a hybrid MBR
}

// Partition is one partition of a Table.
type Partition struct {
	Number     int    // 1-based as Linux numbers them (logical from 5)
	Start      int64  // bytes
	Size       int64  // bytes
	Type       string // MBR: "0x0c"; GPT: lowercase type GUID; None: ""
	TypeName   string // "W95 FAT32 (LBA)", "Linux filesystem", …
	Name       string // GPT partition name; "" for MBR
	UUID       string // MBR: DiskID-NN as Linux PARTUUID ("1234abcd-01", "1234abcd-05"); GPT: partition GUID
	Bootable   bool   // MBR boot flag; GPT legacy BIOS bootable attribute
	Attributes uint64 // GPT attribute bits
	Logical    bool   // MBR logical partition
	Extended   bool   // MBR extended container entry
	Truncated  bool   // the partition extends past the end of the image

	r       io.ReaderAt
	imgSize int64
}

// End returns Start+Size: the byte just past the partition.
func (p Partition) End() int64 { return p.Start + p.Size }

// Section returns the partition's bytes as a reader, clipped to the image
// when the partition is Truncated. It returns an empty reader for a
// partition not obtained from Read.
func (p Partition) Section() *io.SectionReader {
	n := p.Size
	if avail := p.imgSize - p.Start; n > avail {
		n = max(avail, 0)
	}
	if p.r == nil || p.Start < 0 {
		return io.NewSectionReader(emptyReader{}, 0, 0)
	}
	return io.NewSectionReader(p.r, p.Start, n)
}

type emptyReader struct{}

func (emptyReader) ReadAt([]byte, int64) (int, error) { return 0, io.EOF }

// ErrOutside is returned by the writer of Partition.WriterAt for a write
// that does not lie entirely inside the partition.
var ErrOutside = errors.New("part: write outside the partition")

// WriterAt returns a writer onto the partition's bytes inside w (the whole
// image): offset 0 is the partition's first byte. Writes that would fall
// outside [0, Size) are refused with ErrOutside and write nothing.
func (p Partition) WriterAt(w io.WriterAt) io.WriterAt {
	return &boundedWriter{w: w, base: p.Start, size: p.Size}
}

type boundedWriter struct {
	w          io.WriterAt
	base, size int64
}

func (b *boundedWriter) WriteAt(buf []byte, off int64) (int, error) {
	if off < 0 || off > b.size || int64(len(buf)) > b.size-off {
		return 0, fmt.Errorf("%w: %d bytes at offset %d of a %d-byte partition", ErrOutside, len(buf), off, b.size)
	}
	return b.w.WriteAt(buf, b.base+off)
}

// Read reads the partition table of an image of size bytes, probing the
// GPT logical sector size (512, then 4096) and assuming 512-byte sectors
// for an MBR.
func Read(r io.ReaderAt, size int64) (*Table, error) {
	return ReadSectorSize(r, size, 0)
}

// ReadSectorSize is Read for an image whose logical sector size is known
// (512 or 4096, as a block device reports it); 0 probes as Read does. The
// sector size decides the unit of MBR entries; a GPT is always probed.
func ReadSectorSize(r io.ReaderAt, size int64, sectorSize int) (*Table, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidSize, size)
	}
	if sectorSize != 0 && sectorSize != 512 && sectorSize != 4096 {
		return nil, fmt.Errorf("part: sector size %d not supported (512 or 4096)", sectorSize)
	}
	mss := sectorSize
	if mss == 0 {
		mss = 512
	}
	m, merr := mbr.Read(r, size, mss)
	switch {
	case merr == nil:
	case errors.Is(merr, mbr.ErrNoSignature), errors.Is(merr, mbr.ErrNotPartitionTable):
		m = nil
	default:
		return nil, wrap(merr)
	}

	var warnings []string
	if m == nil || m.Protective() {
		g, gerr := gpt.Read(r, size)
		switch {
		case gerr == nil:
			return fromGPT(r, size, g), nil
		case errors.Is(gerr, gpt.ErrNoHeader):
			if m != nil {
				warnings = append(warnings, fmt.Sprintf("the MBR is protective (type 0xee) but no valid GPT was found (%v); showing the MBR", gerr))
			}
		default:
			return nil, wrap(gerr)
		}
	}
	if m == nil {
		t := &Table{Kind: None, SectorSize: mss}
		t.Partitions = []Partition{{Number: 1, Start: 0, Size: size, r: r, imgSize: size}}
		return t, nil
	}
	t := fromMBR(r, size, m)
	t.Warnings = append(warnings, t.Warnings...)
	return t, nil
}

func wrap(err error) error {
	var fm *mbr.FormatError
	var fg *gpt.FormatError
	switch {
	case errors.As(err, &fm):
		return &FormatError{Off: fm.Off, Msg: "reading the MBR", Err: err}
	case errors.As(err, &fg):
		return &FormatError{Off: fg.Off, Msg: "reading the GPT", Err: err}
	}
	return fmt.Errorf("part: %w", err)
}

// clampBytes converts a sector range to bytes, saturating instead of
// overflowing.
func clampBytes(start, sectors uint64, ss int) (int64, int64) {
	const maxInt = 1<<63 - 1
	s := uint64(ss)
	if start > maxInt/s {
		return maxInt, 0
	}
	b := int64(start * s)
	if sectors > uint64(maxInt-b)/s {
		return b, maxInt - b
	}
	return b, int64(sectors * s)
}

func (t *Table) addTruncation(p *Partition, size int64) {
	if p.End() > size {
		p.Truncated = true
		t.Warnings = append(t.Warnings, fmt.Sprintf("partition %d (bytes %d–%d) extends past the end of the %d-byte image; the image is truncated or the table is wrong",
			p.Number, p.Start, p.End(), size))
	}
}

func fromMBR(r io.ReaderAt, size int64, m *mbr.Table) *Table {
	t := &Table{Kind: MBR, SectorSize: m.SectorSize, DiskID: fmt.Sprintf("%08x", m.DiskID), MBR: m}
	t.Warnings = append(t.Warnings, m.Warnings...)
	for _, mp := range m.Partitions {
		start, n := clampBytes(mp.Start, mp.Sectors, m.SectorSize)
		p := Partition{
			Number: mp.Number, Start: start, Size: n,
			Type: mp.Type.Hex(), TypeName: mp.Type.String(),
			UUID:     fmt.Sprintf("%08x-%02x", m.DiskID, mp.Number),
			Bootable: mp.Bootable(), Logical: mp.Logical, Extended: mp.Extended(),
			r: r, imgSize: size,
		}
		t.addTruncation(&p, size)
		t.Partitions = append(t.Partitions, p)
	}
	sortByNumber(t.Partitions)
	return t
}

func fromGPT(r io.ReaderAt, size int64, g *gpt.Table) *Table {
	t := &Table{Kind: GPT, SectorSize: g.SectorSize, DiskID: g.DiskGUID.String(), MBR: g.MBR, GPT: g, Hybrid: g.Hybrid}
	t.Warnings = append(t.Warnings, g.Warnings...)
	for _, gp := range g.Partitions {
		start, n := clampBytes(gp.FirstLBA, gp.Sectors(), g.SectorSize)
		p := Partition{
			Number: gp.Number, Start: start, Size: n,
			Type: gp.Type.String(), TypeName: gp.Type.Name(), Name: gp.Name, UUID: gp.GUID.String(),
			Bootable: gp.Attributes&gpt.AttrLegacyBootable != 0, Attributes: uint64(gp.Attributes),
			r: r, imgSize: size,
		}
		t.addTruncation(&p, size)
		t.Partitions = append(t.Partitions, p)
	}
	return t
}

// sortByNumber sorts partitions by number (insertion sort: tables are
// short and already nearly sorted).
func sortByNumber(ps []Partition) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].Number < ps[j-1].Number; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

// Write writes the table back onto an image of size bytes through w: the
// MBR and its EBR chain, or the GPT with its protective MBR and its backup
// at the end of size. Changes must be made in t.MBR or t.GPT; the friendly
// Partitions are not written back.
func (t *Table) Write(w io.WriterAt, size int64) error {
	switch t.Kind {
	case GPT:
		if t.GPT == nil {
			return errors.New("part: GPT table without its gpt.Table")
		}
		return t.GPT.Write(w, size)
	case MBR:
		if t.MBR == nil {
			return errors.New("part: MBR table without its mbr.Table")
		}
		return t.MBR.Write(w)
	}
	return errors.New("part: no partition table to write")
}
