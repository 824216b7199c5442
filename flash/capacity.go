package flash

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"sync"
)

// ErrFakeCapacity is wrapped by the *CapacityError that CheckCapacity
// returns for a device that loses data written within its claimed size.
var ErrFakeCapacity = errors.New("flash: device does not hold its claimed capacity")

// CapacityError reports a device that did not keep what was written.
type CapacityError struct {
	Target   string
	Claimed  int64 // the size the device reports
	FirstBad int64 // lowest offset of a marker that read back wrong
	Bad      int   // markers that read back wrong
	Markers  int   // markers written
	// WrapsAt is the offset where writes seem to wrap around to the start
	// of the device (a marker written at X was found at X−WrapsAt), or 0.
	WrapsAt int64
}

// Error says what was found and what it means.
func (e *CapacityError) Error() string {
	msg := fmt.Sprintf("flash: %s claims %s but %d of %d test markers read back wrong, the first at offset %d",
		e.Target, ibytes(e.Claimed), e.Bad, e.Markers, e.FirstBad)
	if e.WrapsAt > 0 {
		msg += fmt.Sprintf("; writes wrap around after %s, which is likely its real capacity", ibytes(e.WrapsAt))
	} else {
		msg += fmt.Sprintf("; at most the first %s can be trusted", ibytes(e.FirstBad))
	}
	return msg + "; this is a counterfeit or failing device: do not use it for data you want to keep"
}

// Unwrap returns ErrFakeCapacity.
func (e *CapacityError) Unwrap() error { return ErrFakeCapacity }

// markerSize is the size of one capacity marker.
const markerSize = 4096

var markerMagic = [16]byte{'i', 'm', 'g', 't', 'o', 'o', 'l', ' ', 'c', 'a', 'p', 'a', 'c', 'i', 't', 'y'}

// markerOffsets spreads about 1024 markers over size bytes: every multiple
// of a power-of-two step (so that a device wrapping at any multiple of
// the step overwrites one marker with another), plus the last 4 KiB.
func markerOffsets(size int64) []int64 {
	if size < 2*markerSize {
		return nil
	}
	step := int64(64 << 10)
	if want := size / 1024; want > step {
		step = int64(1) << bits.Len64(uint64(want-1))
	}
	var offs []int64
	for off := int64(0); off+markerSize <= size; off += step {
		offs = append(offs, off)
	}
	last := (size - markerSize) &^ (markerSize - 1)
	if offs[len(offs)-1] != last {
		offs = append(offs, last)
	}
	return offs
}

// fillMarker writes the marker for off: the magic, the offset, the nonce,
// and a keyed pattern filling the rest, so that any changed byte shows.
func fillMarker(p []byte, off int64, nonce [16]byte) {
	copy(p, markerMagic[:])
	binary.LittleEndian.PutUint64(p[16:], uint64(off))
	copy(p[24:], nonce[:])
	var seed [48]byte
	copy(seed[:], nonce[:])
	binary.LittleEndian.PutUint64(seed[16:], uint64(off))
	for i := 40; i < len(p); i += 32 {
		binary.LittleEndian.PutUint64(seed[24:], uint64(i))
		h := sha256.Sum256(seed[:])
		copy(p[i:], h[:])
	}
}

// markerWorkers is how many markers are written or read at once. Markers
// are handed out in increasing offset order, so a marker is written well
// before any marker far above it.
const markerWorkers = 4

// forEachMarker runs fn for each offset on markerWorkers goroutines, each
// with its own aligned buffer, and returns the first error.
func forEachMarker(ctx context.Context, offs []int64, fn func(buf []byte, off int64) error) error {
	ch := make(chan int64)
	errs := make([]error, markerWorkers)
	var wg sync.WaitGroup
	for i := range markerWorkers {
		wg.Go(func() {
			buf := alignedBuf(markerSize)
			for off := range ch {
				if errs[i] == nil {
					errs[i] = fn(buf, off)
				}
			}
		})
	}
	for _, off := range offs {
		if ctx.Err() != nil {
			break
		}
		ch <- off
	}
	close(ch)
	wg.Wait()
	return errors.Join(errs...)
}

// CheckCapacity tests whether t really stores its claimed size, to detect
// counterfeit cards that report more than they hold. It writes 4 KiB
// markers (the offset, a random nonce and a pattern derived from them) at
// about a thousand offsets spread over the whole device, flushes, reads
// them all back (four at a time) and compares.
//
// It is DESTRUCTIVE: the data at the marker offsets is overwritten and
// the partition table and filesystems on t are destroyed. Run it before
// writing an image, never on a disk holding data.
//
// It catches devices that drop writes past their real size and devices
// that wrap around at a multiple of the marker step (the usual fakes,
// whose real size is a multiple of a large power of two); a device that
// wraps elsewhere is caught only if a marker happens to land on another.
func CheckCapacity(ctx context.Context, t Target, p Progress) error {
	if p == nil {
		p = noProgress{}
	}
	size := t.Size()
	offs := markerOffsets(size)
	if len(offs) == 0 {
		return fmt.Errorf("flash: %s is too small (%d bytes) to check", t.Name(), size)
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	stopped := func() error {
		return fmt.Errorf("%w: the capacity check of %s was stopped; its content is now damaged: %w", ErrInterrupted, t.Name(), context.Cause(ctx))
	}
	p.Phase("capacity-write", int64(len(offs))*markerSize)
	err := forEachMarker(ctx, offs, func(buf []byte, off int64) error {
		fillMarker(buf, off, nonce)
		if _, err := t.WriteAt(buf, off); err != nil {
			return fmt.Errorf("flash: writing a capacity marker to %s at offset %d: %w", t.Name(), off, err)
		}
		p.Update(markerSize)
		return nil
	})
	if ctx.Err() != nil {
		return stopped()
	}
	if err != nil {
		return err
	}
	if err := t.Sync(); err != nil {
		return err
	}
	cerr := &CapacityError{Target: t.Name(), Claimed: size, FirstBad: -1, Markers: len(offs)}
	var mu sync.Mutex
	var wraps []int64
	p.Phase("capacity-read", int64(len(offs))*markerSize)
	err = forEachMarker(ctx, offs, func(buf []byte, off int64) error {
		if n, err := t.ReadAt(buf, off); n < markerSize {
			return fmt.Errorf("flash: reading a capacity marker of %s at offset %d: %w", t.Name(), off, err)
		}
		p.Update(markerSize)
		want := make([]byte, markerSize)
		fillMarker(want, off, nonce)
		if string(buf) == string(want) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		cerr.Bad++
		if cerr.FirstBad < 0 || off < cerr.FirstBad {
			cerr.FirstBad = off
		}
		// A marker of this run written elsewhere: the device wraps.
		if [16]byte(buf[:16]) == markerMagic && [16]byte(buf[24:40]) == nonce {
			if other := int64(binary.LittleEndian.Uint64(buf[16:])); other != off {
				wraps = append(wraps, max(other-off, off-other))
			}
		}
		return nil
	})
	if ctx.Err() != nil {
		return stopped()
	}
	if err != nil {
		return err
	}
	if cerr.Bad == 0 {
		return nil
	}
	if len(wraps) > 0 {
		sort.Slice(wraps, func(i, j int) bool { return wraps[i] < wraps[j] })
		cerr.WrapsAt = wraps[0]
	}
	return cerr
}
