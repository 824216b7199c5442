package vmdk

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/klauspost/compress/zlib"

	"imgtool/image"
	"imgtool/image/internal/vdisk"
)

// errTooMuch is returned by Write when more bytes come than the Data
// extents hold.
var errTooMuch = vdisk.ErrTooMuch("vmdk")

// Writer defaults.
const (
	grainSectors   = 128 // 64 KiB grains
	gtesPerGT      = 512
	descSectors    = 20
	overheadSector = 128 // header and descriptor, padded to a grain
)

// WriterOption configures a Writer.
type WriterOption func(*writerOptions)

type writerOptions struct {
	name    string
	workers int
}

// WithFileName sets the file name the embedded descriptor gives its one
// extent (the output's own name); the default is "disk.vmdk".
func WithFileName(name string) WriterOption {
	return func(o *writerOptions) { o.name = name }
}

// WithWorkers bounds the goroutines compressing grains; the default is
// GOMAXPROCS.
func WithWorkers(n int) WriterOption {
	return func(o *writerOptions) { o.workers = n }
}

// Writer writes a streamOptimized VMDK sequentially. Create it with
// NewWriter, send the bytes of the Data extents with Write, finish with
// Close.
type Writer struct {
	w      io.Writer
	size   int64
	header SparseExtentHeader
	pos    int64      // bytes written
	gts    [][]uint32 // grain tables, allocated when a grain lands in one
	asm    vdisk.Assembler
	pool   *vdisk.Pool
	err    error
	closed bool
}

// NewWriter starts a streamOptimized VMDK of size bytes (a multiple of
// 512) on w and writes its header and descriptor. extents must cover
// [0, size) in order: the bytes of the Data extents follow through Write,
// Zero extents read back as zeros without being sent. w is only ever
// appended to: a pipe will do.
func NewWriter(w io.Writer, size int64, extents []image.Extent, opts ...WriterOption) (*Writer, error) {
	o := writerOptions{name: "disk.vmdk"}
	for _, opt := range opts {
		opt(&o)
	}
	if size%SectorSize != 0 {
		return nil, fmt.Errorf("vmdk: disk size %d is not a multiple of 512 bytes", size)
	}
	if bytes.ContainsAny([]byte(o.name), "\"\r\n\x00") {
		return nil, fmt.Errorf("vmdk: file name %q cannot go in a descriptor", o.name)
	}
	data, total, err := vdisk.CheckExtents("vmdk", extents, size)
	if err != nil {
		return nil, err
	}
	gtBytes := int64(grainSectors * SectorSize * gtesPerGT)
	v := &Writer{w: w, size: size}
	v.gts = make([][]uint32, (size+gtBytes-1)/gtBytes)
	v.header = SparseExtentHeader{
		MagicNumber:        Magic,
		Version:            3,
		Flags:              FlagValidNewline | FlagCompressed | FlagMarkers,
		Capacity:           uint64(size / SectorSize),
		GrainSize:          grainSectors,
		DescriptorOffset:   1,
		DescriptorSize:     descSectors,
		NumGTEsPerGT:       gtesPerGT,
		GDOffset:           gdAtEnd,
		OverHead:           overheadSector,
		SingleEndLineChar:  '\n',
		NonEndLineChar:     ' ',
		DoubleEndLineChar1: '\r',
		DoubleEndLineChar2: '\n',
		CompressAlgorithm:  CompressDeflate,
	}
	head := make([]byte, overheadSector*SectorSize)
	if _, err := binary.Encode(head, binary.LittleEndian, &v.header); err != nil {
		return nil, fmt.Errorf("vmdk: %w", err)
	}
	desc := descriptor(size, o.name)
	if len(desc) > descSectors*SectorSize {
		return nil, fmt.Errorf("vmdk: descriptor of %d bytes too long", len(desc))
	}
	copy(head[SectorSize:], desc)
	if err := v.put(head); err != nil {
		return nil, err
	}
	const unit = grainSectors * SectorSize
	v.pool = vdisk.NewPool(o.workers, unit, newGrainCompressor, v.handle)
	v.asm.Init("vmdk", errTooMuch, data, total, unit, v.pool.Buffer, v.emit)
	return v, nil
}

// descriptor returns the embedded descriptor of a single-file
// streamOptimized disk.
func descriptor(size int64, name string) string {
	var cid [4]byte
	_, _ = rand.Read(cid[:]) // never fails
	sectors := size / SectorSize
	cyl := min(sectors/(16*63), 16383)
	return fmt.Sprintf(`# Disk DescriptorFile
version=1
CID=%08x
parentCID=ffffffff
createType="streamOptimized"

# Extent description
RW %d SPARSE "%s"

# The Disk Data Base
#DDB

ddb.virtualHWVersion = "4"
ddb.geometry.cylinders = "%d"
ddb.geometry.heads = "16"
ddb.geometry.sectors = "63"
ddb.adapterType = "ide"
`, binary.LittleEndian.Uint32(cid[:]), sectors, name, cyl)
}

// newGrainCompressor returns the function a pool worker compresses with:
// it makes the whole grain record (grain header, zlib stream, padding to
// a sector).
func newGrainCompressor() func(*vdisk.Job) {
	var out bytes.Buffer
	zw, err := zlib.NewWriterLevel(&out, zlib.DefaultCompression)
	if err != nil {
		panic(err) // the level is a valid constant
	}
	return func(j *vdisk.Job) {
		out.Reset()
		out.Write(make([]byte, GrainHdrSize))
		zw.Reset(&out)
		if _, err := zw.Write(j.In); err != nil || zw.Close() != nil {
			return // cannot fail on a bytes.Buffer
		}
		b := out.Bytes()
		binary.LittleEndian.PutUint64(b, uint64(j.Idx*grainSectors))
		binary.LittleEndian.PutUint32(b[8:], uint32(len(b)-GrainHdrSize))
		pad := (SectorSize - len(b)%SectorSize) % SectorSize
		j.Out = append(bytes.Clone(b), make([]byte, pad)...)
	}
}

// put appends b to the output.
func (v *Writer) put(b []byte) error {
	n, err := v.w.Write(b)
	v.pos += int64(n)
	if err != nil {
		return fmt.Errorf("vmdk: writing at offset %#x: %w", v.pos, err)
	}
	return nil
}

// sector returns the current output position as a 32-bit sector number.
func (v *Writer) sector() (uint32, error) {
	s := v.pos / SectorSize
	if s > math.MaxUint32 {
		return 0, errors.New("vmdk: output larger than 2 TiB, the limit of grain table entries")
	}
	return uint32(s), nil
}

// emit hands grain g to the compressors; all-zero grains stay
// unallocated.
func (v *Writer) emit(g int64, buf []byte) error {
	if vdisk.IsZero(buf) {
		v.pool.Recycle(buf)
		return nil
	}
	return v.pool.Submit(g, buf)
}

// handle writes a compressed grain, in order.
func (v *Writer) handle(j *vdisk.Job) error {
	if j.Out == nil {
		return errors.New("vmdk: compressing a grain failed")
	}
	s, err := v.sector()
	if err != nil {
		return err
	}
	gi := j.Idx / gtesPerGT
	if v.gts[gi] == nil {
		v.gts[gi] = make([]uint32, gtesPerGT)
	}
	v.gts[gi][j.Idx%gtesPerGT] = s
	return v.put(j.Out)
}

// Write takes the next bytes of the Data extents, in order.
func (v *Writer) Write(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.closed {
		return 0, errors.New("vmdk: write after Close")
	}
	n, err := v.asm.Write(p)
	if err != nil {
		v.fail(err)
	}
	return n, err
}

func (v *Writer) fail(err error) {
	if v.err == nil {
		v.err = err
	}
	v.pool.Stop()
}

// Close writes the last grain, the grain tables, the grain directory, the
// footer and the end-of-stream marker. It does not close the underlying
// writer.
func (v *Writer) Close() error {
	if v.closed {
		return v.err
	}
	v.closed = true
	if v.err != nil {
		return v.err
	}
	err := v.asm.Finish()
	if err == nil {
		err = v.pool.Drain()
	}
	if err == nil {
		err = v.writeTables()
	}
	if err != nil {
		v.fail(err)
		return err
	}
	v.pool.Stop()
	return nil
}

// marker returns a metadata marker sector.
func marker(value uint64, t MarkerType) []byte {
	b := make([]byte, SectorSize)
	binary.LittleEndian.PutUint64(b, value)
	binary.LittleEndian.PutUint32(b[12:], uint32(t))
	return b
}

func (v *Writer) writeTables() error {
	gd := make([]byte, (len(v.gts)*4+SectorSize-1)/SectorSize*SectorSize)
	const gtSectors = gtesPerGT * 4 / SectorSize
	for i, gt := range v.gts {
		if gt == nil {
			continue
		}
		if err := v.put(marker(gtSectors, MarkerGT)); err != nil {
			return err
		}
		s, err := v.sector()
		if err != nil {
			return err
		}
		binary.LittleEndian.PutUint32(gd[i*4:], s)
		b := make([]byte, gtSectors*SectorSize)
		for k, e := range gt {
			binary.LittleEndian.PutUint32(b[k*4:], e)
		}
		if err := v.put(b); err != nil {
			return err
		}
	}
	if err := v.put(marker(uint64(len(gd)/SectorSize), MarkerGD)); err != nil {
		return err
	}
	gdSector, err := v.sector()
	if err != nil {
		return err
	}
	if err := v.put(gd); err != nil {
		return err
	}
	if err := v.put(marker(1, MarkerFooter)); err != nil {
		return err
	}
	footer := v.header
	footer.GDOffset = uint64(gdSector)
	fb := make([]byte, SectorSize)
	if _, err := binary.Encode(fb, binary.LittleEndian, &footer); err != nil {
		return fmt.Errorf("vmdk: %w", err)
	}
	if err := v.put(fb); err != nil {
		return err
	}
	return v.put(marker(0, MarkerEOS))
}
