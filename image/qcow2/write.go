package qcow2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/flate"

	"imgtool/image"
	"imgtool/image/internal/vdisk"
)

// errTooMuch is returned by Write when more bytes come than the Data
// extents hold.
var errTooMuch = vdisk.ErrTooMuch("qcow2")

// ErrNeedFile is returned by NewWriter when compressed output is asked
// for but the destination cannot be written at arbitrary offsets (a pipe).
var ErrNeedFile = errors.New("qcow2: compressed qcow2 output needs a file, not a pipe")

// Writer defaults and limits.
const (
	DefaultClusterSize = 64 << 10
	refcountOrder      = 4 // 16-bit refcounts
	headerLength       = 112
	// deflateWindow is the window qemu inflates compressed clusters
	// with (raw deflate, 12 window bits): longer back-references would
	// not decode there.
	deflateWindow = 4096
)

// WriterOption configures a Writer.
type WriterOption func(*writerOptions)

type writerOptions struct {
	clusterSize int64
	compress    bool
	workers     int
}

// WithClusterSize sets the cluster size, a power of two from 512 bytes to
// 2 MiB; the default is 64 KiB.
func WithClusterSize(n int64) WriterOption {
	return func(o *writerOptions) { o.clusterSize = n }
}

// WithCompression stores every cluster deflate-compressed (qemu-img
// convert -c), unless its compressed form is not smaller. The output must
// then be a file: see the package documentation.
func WithCompression() WriterOption {
	return func(o *writerOptions) { o.compress = true }
}

// WithWorkers bounds the goroutines compressing clusters; the default is
// GOMAXPROCS.
func WithWorkers(n int) WriterOption {
	return func(o *writerOptions) { o.workers = n }
}

// Writer writes a qcow2 version 3 image sequentially. Create it with
// NewWriter, send the bytes of the Data extents with Write, finish with
// Close.
type Writer struct {
	w    io.Writer
	wa   io.WriterAt // nil: stream mode, every metadata table written first
	o    writerOptions
	size int64

	cs        int64
	cbits     uint
	l2Entries int64
	l1Size    int64
	l1Off     int64
	rtOff     int64
	rtCl      int64
	rbOff     int64
	rbCount   int64
	dataOff   int64   // first data cluster
	l2Host    []int64 // per L1 entry, the host offset of its L2 table or 0
	l2        [][]uint64
	dataRef   []uint16 // refcounts of the clusters from dataOff on

	pos    int64 // bytes written to w
	asm    vdisk.Assembler
	pool   *vdisk.Pool
	spare  []byte // a cluster buffer to reuse, without compression
	err    error
	closed bool
}

// NewWriter starts a qcow2 image of size bytes (a multiple of 512) on w
// and writes its header. extents must cover [0, size) in order: the bytes
// of the Data extents follow through Write, Zero extents read back as
// zeros without being sent.
func NewWriter(w io.Writer, size int64, extents []image.Extent, opts ...WriterOption) (*Writer, error) {
	o := writerOptions{clusterSize: DefaultClusterSize}
	for _, opt := range opts {
		opt(&o)
	}
	cs := o.clusterSize
	if cs < 1<<MinClusterBits || cs > 1<<MaxClusterBits || cs&(cs-1) != 0 {
		return nil, fmt.Errorf("qcow2: cluster size %d is not a power of two from 512 bytes to 2 MiB", cs)
	}
	if size%512 != 0 {
		return nil, fmt.Errorf("qcow2: disk size %d is not a multiple of 512 bytes", size)
	}
	data, total, err := vdisk.CheckExtents("qcow2", extents, size)
	if err != nil {
		return nil, err
	}
	q := &Writer{w: w, o: o, size: size, cs: cs, l2Entries: cs / 8}
	for q.cbits = MinClusterBits; int64(1)<<q.cbits != cs; q.cbits++ {
	}
	wa, base := vdisk.FileTarget(w)
	if o.compress {
		if wa == nil {
			return nil, ErrNeedFile
		}
	}
	if wa != nil {
		q.wa = vdisk.OffsetWriterAt{W: wa, Base: base}
	}
	perL1 := q.l2Entries * cs
	q.l1Size = (size + perL1 - 1) / perL1
	if q.l1Size*8 > maxL1Bytes {
		return nil, fmt.Errorf("qcow2: a %d-byte disk needs an L1 table larger than 32 MiB; use a larger cluster size", size)
	}
	runs := vdisk.UnitRuns(data, cs)
	var touched int64
	q.l2Host = make([]int64, q.l1Size)
	var l2Count int64
	for _, r := range runs {
		touched += r[1] - r[0] + 1
		for j := r[0] / q.l2Entries; j <= r[1]/q.l2Entries; j++ {
			if q.l2Host[j] == 0 {
				q.l2Host[j] = 1 // placed below
				l2Count++
			}
		}
	}
	q.layout(touched, l2Count)
	q.l2 = make([][]uint64, q.l1Size)
	if q.wa == nil {
		// Stream: every cluster touched by a Data extent gets a host
		// cluster, in disk order, so every table is known now.
		host := q.dataOff
		for _, r := range runs {
			for c := r[0]; c <= r[1]; c++ {
				q.setL2(c, uint64(host)|entryCopied)
				host += cs
			}
		}
		q.dataRef = make([]uint16, touched)
		for i := range q.dataRef {
			q.dataRef[i] = 1
		}
	}
	if err := q.writeMetadata(); err != nil {
		return nil, err
	}
	newBuf := func() []byte {
		if b := q.spare; b != nil {
			q.spare = nil
			clear(b)
			return b
		}
		return make([]byte, cs)
	}
	if o.compress {
		q.pool = vdisk.NewPool(o.workers, int(cs), q.newCompressor, q.handle)
		newBuf = q.pool.Buffer
	}
	q.asm.Init("qcow2", errTooMuch, data, total, cs, newBuf, q.emit)
	return q, nil
}

// layout places the metadata: the header cluster, the L1 table, the
// refcount table, the refcount blocks (enough for the largest file these
// extents can make), the L2 tables, then the data.
func (q *Writer) layout(touched, l2Count int64) {
	cs := q.cs
	l1Cl := (q.l1Size*8 + cs - 1) / cs
	perBlock := cs * 8 / (1 << refcountOrder)
	var rtCl, rb int64
	for {
		n := 1 + l1Cl + rtCl + rb + l2Count + touched
		nrb := (n + perBlock - 1) / perBlock
		nrt := max(1, (nrb*8+cs-1)/cs)
		if nrb == rb && nrt == rtCl {
			break
		}
		rb, rtCl = nrb, nrt
	}
	q.l1Off = cs
	q.rtOff = q.l1Off + l1Cl*cs
	q.rtCl = rtCl
	q.rbOff = q.rtOff + rtCl*cs
	q.rbCount = rb
	l2Off := q.rbOff + rb*cs
	k := int64(0)
	for j := range q.l2Host {
		if q.l2Host[j] != 0 {
			q.l2Host[j] = l2Off + k*cs
			k++
		}
	}
	q.dataOff = l2Off + l2Count*cs
}

func (q *Writer) setL2(c int64, e uint64) {
	j := c / q.l2Entries
	if q.l2[j] == nil {
		q.l2[j] = make([]uint64, q.l2Entries)
	}
	q.l2[j][c%q.l2Entries] = e
}

// header returns the header cluster.
func (q *Writer) header() []byte {
	h := HeaderV3{
		HeaderV2: HeaderV2{
			Magic:                 Magic,
			Version:               3,
			ClusterBits:           uint32(q.cbits),
			Size:                  uint64(q.size),
			L1Size:                uint32(q.l1Size),
			L1TableOffset:         uint64(q.l1Off),
			RefcountTableOffset:   uint64(q.rtOff),
			RefcountTableClusters: uint32(q.rtCl),
		},
		RefcountOrder:   refcountOrder,
		HeaderLength:    headerLength,
		CompressionType: CompressionZlib,
	}
	b := make([]byte, q.cs)
	// The end-of-extensions marker is the zero bytes after the header.
	if _, err := binary.Encode(b, binary.BigEndian, &h); err != nil {
		panic(err) // the buffer is a whole cluster, at least 512 bytes
	}
	return b
}

// writeMetadata writes everything before the first data cluster. In
// file mode, the refcount blocks and L2 tables are written as zeros and
// filled by Close.
func (q *Writer) writeMetadata() error {
	if err := q.put(q.header()); err != nil {
		return err
	}
	l1 := make([]byte, q.rtOff-q.l1Off)
	for j, h := range q.l2Host {
		if h != 0 {
			binary.BigEndian.PutUint64(l1[j*8:], uint64(h)|entryCopied)
		}
	}
	rt := make([]byte, q.rtCl*q.cs)
	for i := range q.rbCount {
		binary.BigEndian.PutUint64(rt[i*8:], uint64(q.rbOff+i*q.cs))
	}
	if err := q.put(l1); err != nil {
		return err
	}
	if err := q.put(rt); err != nil {
		return err
	}
	if q.wa != nil {
		return q.putZeros(q.dataOff - q.pos)
	}
	for i := range q.rbCount {
		if err := q.put(q.refcountBlock(i)); err != nil {
			return err
		}
	}
	for j := range q.l2Host {
		if q.l2Host[j] != 0 {
			if err := q.put(q.l2Bytes(j)); err != nil {
				return err
			}
			q.l2[j] = nil
		}
	}
	return nil
}

func (q *Writer) l2Bytes(j int) []byte {
	b := make([]byte, q.cs)
	for i, e := range q.l2[j] {
		binary.BigEndian.PutUint64(b[i*8:], e)
	}
	return b
}

// refcountBlock returns refcount block i: metadata clusters count 1, data
// clusters what dataRef says.
func (q *Writer) refcountBlock(i int64) []byte {
	b := make([]byte, q.cs)
	per := q.cs / 2
	meta := q.dataOff / q.cs
	for k := range per {
		c := i*per + k
		var r uint16
		switch {
		case c < meta:
			r = 1
		case c-meta < int64(len(q.dataRef)):
			r = q.dataRef[c-meta]
		}
		binary.BigEndian.PutUint16(b[k*2:], r)
	}
	return b
}

// put writes b at the end of the output.
func (q *Writer) put(b []byte) error {
	n, err := q.w.Write(b)
	q.pos += int64(n)
	if err != nil {
		return fmt.Errorf("qcow2: writing at offset %#x: %w", q.pos, err)
	}
	return nil
}

func (q *Writer) putZeros(n int64) error {
	for n > 0 {
		k := min(n, int64(len(vdisk.ZeroBlock)))
		if err := q.put(vdisk.ZeroBlock[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// ref adds one to the refcount of the clusters holding [off, off+n).
func (q *Writer) ref(off, n int64) {
	first, last := (off-q.dataOff)/q.cs, (off+n-1-q.dataOff)/q.cs
	for int64(len(q.dataRef)) <= last {
		q.dataRef = append(q.dataRef, 0)
	}
	for c := first; c <= last; c++ {
		q.dataRef[c]++
	}
}

// emit stores guest cluster c.
func (q *Writer) emit(c int64, buf []byte) error {
	if q.pool != nil {
		if vdisk.IsZero(buf) {
			q.pool.Recycle(buf)
			return nil
		}
		return q.pool.Submit(c, buf)
	}
	defer func() { q.spare = buf }()
	switch {
	case q.wa == nil:
		return q.put(buf)
	case vdisk.IsZero(buf):
		return nil
	}
	return q.storeRaw(c, buf)
}

// storeRaw writes a whole cluster at the next cluster boundary.
func (q *Writer) storeRaw(c int64, buf []byte) error {
	if pad := (q.cs - q.pos%q.cs) % q.cs; pad != 0 {
		if err := q.putZeros(pad); err != nil {
			return err
		}
	}
	host := q.pos
	if err := q.put(buf); err != nil {
		return err
	}
	q.ref(host, q.cs)
	q.setL2(c, uint64(host)|entryCopied)
	return nil
}

// newCompressor returns the function a pool worker compresses with.
func (q *Writer) newCompressor() func(*vdisk.Job) {
	var out bytes.Buffer
	fw, err := flate.NewWriterWindow(&out, deflateWindow)
	if err != nil {
		panic(err) // the window size is a valid constant
	}
	return func(j *vdisk.Job) {
		out.Reset()
		fw.Reset(&out)
		if _, err := fw.Write(j.In); err != nil || fw.Close() != nil || int64(out.Len()) >= q.cs {
			return // stored as it is
		}
		j.Out = bytes.Clone(out.Bytes())
	}
}

// handle writes a compressed job, in order.
func (q *Writer) handle(j *vdisk.Job) error {
	if j.Out == nil {
		return q.storeRaw(j.Idx, j.In)
	}
	n := int64(len(j.Out))
	// A host cluster shared by too many compressed clusters would
	// overflow its 16-bit refcount: start a new one.
	if q.pos%q.cs != 0 {
		if c := (q.pos - q.dataOff) / q.cs; q.dataRef[c] >= 1<<16-2 {
			if err := q.putZeros(q.cs - q.pos%q.cs); err != nil {
				return err
			}
		}
	}
	host := q.pos
	if err := q.put(j.Out); err != nil {
		return err
	}
	q.ref(host, n)
	x := 62 - (q.cbits - 8)
	sectors := uint64((host+n-1)/512 - host/512)
	q.setL2(j.Idx, entryCompressed|sectors<<x|uint64(host))
	return nil
}

// Write takes the next bytes of the Data extents, in order.
func (q *Writer) Write(p []byte) (int, error) {
	if q.err != nil {
		return 0, q.err
	}
	if q.closed {
		return 0, errors.New("qcow2: write after Close")
	}
	n, err := q.asm.Write(p)
	if err != nil {
		q.fail(err)
	}
	return n, err
}

func (q *Writer) fail(err error) {
	if q.err == nil {
		q.err = err
	}
	if q.pool != nil {
		q.pool.Stop()
	}
}

// Close writes the last cluster and, for output written to a file, the L2
// tables and refcount blocks. It does not close the underlying writer.
func (q *Writer) Close() error {
	if q.closed {
		return q.err
	}
	q.closed = true
	if q.err != nil {
		return q.err
	}
	err := q.asm.Finish()
	if err == nil && q.pool != nil {
		err = q.pool.Drain()
	}
	if err == nil && q.wa != nil {
		err = q.finishTables()
	}
	if err != nil {
		q.fail(err)
		return err
	}
	if q.pool != nil {
		q.pool.Stop()
	}
	return nil
}

// finishTables pads the file to a whole cluster and writes the L2 tables
// and refcount blocks in the space reserved for them.
func (q *Writer) finishTables() error {
	if pad := (q.cs - q.pos%q.cs) % q.cs; pad != 0 {
		if err := q.putZeros(pad); err != nil {
			return err
		}
	}
	for j, h := range q.l2Host {
		if h == 0 || q.l2[j] == nil {
			continue
		}
		if _, err := q.wa.WriteAt(q.l2Bytes(j), h); err != nil {
			return fmt.Errorf("qcow2: writing the L2 table at offset %#x: %w", h, err)
		}
	}
	for i := range q.rbCount {
		off := q.rbOff + i*q.cs
		if _, err := q.wa.WriteAt(q.refcountBlock(i), off); err != nil {
			return fmt.Errorf("qcow2: writing the refcount block at offset %#x: %w", off, err)
		}
	}
	return nil
}
