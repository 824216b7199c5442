package vdisk

import (
	"bytes"
	"errors"
	"fmt"

	"imgtool/image"
)

// CheckExtents verifies that ext covers [0, size) in order with known
// kinds and returns its Data extents (empty extents dropped) and their
// total length. Errors start with name, the format's name.
func CheckExtents(name string, ext []image.Extent, size int64) ([]image.Extent, int64, error) {
	if size < 0 {
		return nil, 0, fmt.Errorf(name+": negative disk size %d", size)
	}
	var data []image.Extent
	var pos, total int64
	for i, e := range ext {
		if e.Len == 0 {
			continue
		}
		if e.Off != pos || e.Len < 0 || e.End() > size {
			return nil, 0, fmt.Errorf(name+": extent %d [%d, +%d) does not continue at %d within a %d-byte disk", i, e.Off, e.Len, pos, size)
		}
		switch e.Kind {
		case image.Data:
			if n := len(data); n > 0 && data[n-1].End() == e.Off {
				data[n-1].Len += e.Len
			} else {
				data = append(data, e)
			}
			total += e.Len
		case image.Zero:
		default:
			return nil, 0, fmt.Errorf(name+": extent %d has unknown kind %v", i, e.Kind)
		}
		pos = e.End()
	}
	if pos != size {
		return nil, 0, fmt.Errorf(name+": extents end at %d, the disk is %d bytes", pos, size)
	}
	return data, total, nil
}

// UnitRuns returns the runs [first, last] of units of the given size
// that overlap the Data extents, merged, in order.
func UnitRuns(data []image.Extent, unit int64) [][2]int64 {
	var runs [][2]int64
	for _, e := range data {
		a, b := e.Off/unit, (e.End()-1)/unit
		if n := len(runs); n > 0 && runs[n-1][1] >= a-1 {
			runs[n-1][1] = max(runs[n-1][1], b)
			continue
		}
		runs = append(runs, [2]int64{a, b})
	}
	return runs
}

// ErrTooMuch returns the error the assembler of the format called name
// reports when more bytes are written than its Data extents hold. Each
// format makes its own once, so that callers can match it with errors.Is.
func ErrTooMuch(name string) error {
	return errors.New(name + ": more bytes written than the Data extents hold")
}

// Assembler cuts the concatenated bytes of the Data extents into units of
// the disk (clusters, grains, blocks). A unit is handed to emit, zero
// filled where no Data extent covers it, once the next byte belongs to a
// later unit or at finish. emit owns the buffer it is given.
type Assembler struct {
	name    string
	tooMuch error
	data    []image.Extent
	unit    int64
	ei      int   // current Data extent
	pos     int64 // disk offset of the next byte
	cur     int64 // unit being filled, -1 for none
	buf     []byte
	got     int64
	total   int64
	newBuf  func() []byte // returns a zeroed unit
	emit    func(idx int64, buf []byte) error
}

// Init readies a for the Data extents data, holding total bytes, cut into
// units of the given size. name starts its errors and tooMuch is returned
// by Write when more than total bytes come; newBuf returns a zeroed unit
// and emit receives each filled unit with its index.
func (a *Assembler) Init(name string, tooMuch error, data []image.Extent, total, unit int64, newBuf func() []byte, emit func(int64, []byte) error) {
	*a = Assembler{name: name, tooMuch: tooMuch, data: data, unit: unit, cur: -1, total: total, newBuf: newBuf, emit: emit}
	if len(data) > 0 {
		a.pos = data[0].Off
	}
}

// Unit returns the unit size given to Init.
func (a *Assembler) Unit() int64 { return a.unit }

// Write takes the next bytes of the Data extents, emitting every unit it
// completes.
func (a *Assembler) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if a.ei >= len(a.data) {
			return n, a.tooMuch
		}
		e := a.data[a.ei]
		u := a.pos / a.unit
		if u != a.cur {
			if a.cur >= 0 {
				b := a.buf
				a.buf = nil
				if err := a.emit(a.cur, b); err != nil {
					return n, err
				}
			}
			a.cur, a.buf = u, a.newBuf()
		}
		k := int(min(int64(len(p)), e.End()-a.pos, (u+1)*a.unit-a.pos))
		copy(a.buf[a.pos-u*a.unit:], p[:k])
		p = p[k:]
		n += k
		a.got += int64(k)
		a.pos += int64(k)
		if a.pos == e.End() {
			a.ei++
			if a.ei < len(a.data) {
				a.pos = a.data[a.ei].Off
			}
		}
	}
	return n, nil
}

// Finish emits the last unit; it fails when bytes are missing.
func (a *Assembler) Finish() error {
	if a.got != a.total {
		return fmt.Errorf(a.name+": %d bytes written, the Data extents hold %d", a.got, a.total)
	}
	if a.cur >= 0 {
		idx, b := a.cur, a.buf
		a.cur, a.buf = -1, nil
		return a.emit(idx, b)
	}
	return nil
}

// IsZero reports whether b holds only zero bytes.
func IsZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(ZeroBlock))
		if !bytes.Equal(b[:n], ZeroBlock[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// ZeroBlock is a block of zero bytes, to write zeros from.
var ZeroBlock [4096]byte
