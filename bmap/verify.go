package bmap

import (
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync"

	"imgtool/image"
)

// ChecksumError reports a range of the image whose bytes do not match the
// checksum in the block map.
type ChecksumError struct {
	First, Last int64 // blocks
	Off, Len    int64 // bytes
	Want, Got   string
}

// Error says which range differs and what it means.
func (e *ChecksumError) Error() string {
	return fmt.Sprintf("bmap: blocks %d-%d (bytes %d-%d) of the image do not match their checksum in the block map (want %s, got %s): the image or the .bmap file is damaged, or the .bmap was made for another image",
		e.First, e.Last, e.Off, e.Off+e.Len-1, e.Want, e.Got)
}

// Unwrap returns ErrChecksum.
func (e *ChecksumError) Unwrap() error { return ErrChecksum }

// Checked is an image whose reads are checked against a block map's range
// checksums as they happen. Reads must cover each range front to back, as
// a sequential copy does; a range read otherwise is counted as unchecked.
type Checked struct {
	image.Image
	m *Map

	mu        sync.Mutex
	idx       int   // current range
	pos       int64 // bytes of it hashed so far
	h         hash.Hash
	checked   int
	unchecked int
	err       error
}

// checkedStream is a Checked over an image that streams.
type checkedStream struct {
	*Checked
	s interface{ Stream() (io.ReadCloser, error) }
}

// Verify wraps img so that reading it checks m's range checksums; a read
// that completes a range whose checksum differs fails with a
// *ChecksumError. When img (or an image it wraps) offers a sequential
// Stream, the result offers one too, checked the same way. Call Done after
// the copy to learn whether every range was checked.
func Verify(img image.Image, m *Map) image.Image {
	c := &Checked{Image: img, m: m}
	if s, ok := image.As[interface{ Stream() (io.ReadCloser, error) }](img); ok {
		return &checkedStream{Checked: c, s: s}
	}
	return c
}

// Done reports the number of ranges checked and returns an error when a
// range did not match or was not read in order (and so was not checked).
func Done(img image.Image) (checked int, err error) {
	var c *Checked
	switch v := img.(type) {
	case *Checked:
		c = v
	case *checkedStream:
		c = v.Checked
	default:
		return 0, fmt.Errorf("bmap: Done needs an image returned by Verify")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.checked, c.err
	}
	missing := c.unchecked
	for i := c.idx; i < len(c.m.Ranges); i++ {
		if c.m.Ranges[i].Checksum != "" {
			missing++
		}
	}
	if missing > 0 {
		return c.checked, fmt.Errorf("bmap: %d ranges with a checksum were not read in full, so they were not checked", missing)
	}
	return c.checked, nil
}

// ReadAt reads from the image and checks what it read.
func (c *Checked) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.Image.ReadAt(p, off)
	if ferr := c.feed(p[:n], off); ferr != nil {
		// No bytes: callers may ignore an error that comes with a full read.
		return 0, ferr
	}
	return n, err
}

// Unwrap returns the image under the check.
func (c *Checked) Unwrap() image.Image { return c.Image }

// Stream returns the image's stream, checked as it is read.
func (c *checkedStream) Stream() (io.ReadCloser, error) {
	rc, err := c.s.Stream()
	if err != nil {
		return nil, err
	}
	return &streamChecker{rc: rc, c: c.Checked}, nil
}

type streamChecker struct {
	rc  io.ReadCloser
	c   *Checked
	pos int64
}

func (s *streamChecker) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	if ferr := s.c.feed(p[:n], s.pos); ferr != nil {
		return 0, ferr
	}
	s.pos += int64(n)
	return n, err
}

func (s *streamChecker) Close() error { return s.rc.Close() }

// feed hashes the bytes of p (read at off) that continue the current range
// and checks each range it completes.
func (c *Checked) feed(p []byte, off int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	end := off + int64(len(p))
	for c.idx < len(c.m.Ranges) {
		r := c.m.Ranges[c.idx]
		rs, rl := c.m.Off(r), c.m.Len(r)
		cur := rs + c.pos
		if r.Checksum == "" {
			c.idx++
			continue
		}
		if end <= cur {
			return nil // before where the range continues
		}
		if off > cur {
			// Part of the range was never read here: skip it.
			c.unchecked++
			c.idx, c.pos, c.h = c.idx+1, 0, nil
			continue
		}
		take := min(end, rs+rl) - cur
		if c.h == nil {
			c.h = newHash(c.m.ChecksumType)
		}
		c.h.Write(p[cur-off : cur-off+take])
		c.pos += take
		if c.pos < rl {
			return nil
		}
		got := hex.EncodeToString(c.h.Sum(nil))
		c.idx, c.pos, c.h = c.idx+1, 0, nil
		if got != r.Checksum {
			c.err = &ChecksumError{First: r.First, Last: r.Last, Off: rs, Len: rl, Want: r.Checksum, Got: got}
			return c.err
		}
		c.checked++
	}
	return nil
}
