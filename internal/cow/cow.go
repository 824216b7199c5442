// Package cow gives a copy-on-write view of a read-only io.ReaderAt: writes
// land in memory and reads see them, so that a journal can be replayed (or a
// change planned) without changing an image.
package cow

import (
	"errors"
	"io"
	"sync"
)

// ErrFull is returned when an overlay would hold more than its cap.
var ErrFull = errors.New("cow: in-memory overlay is full")

const overlayPage = 4096

// Overlay is a copy-on-write view of a read-only io.ReaderAt: writes land in
// memory, in 4 KiB pages, and reads see them. Safe for concurrent use.
type Overlay struct {
	base  io.ReaderAt
	size  int64
	limit int // pages at most

	mu    sync.RWMutex
	pages map[int64][]byte // page number → overlayPage bytes
}

// New returns an overlay of the first size bytes of base that holds at most
// maxBytes of written pages; a write beyond that fails with ErrFull.
func New(base io.ReaderAt, size int64, maxBytes int64) *Overlay {
	return &Overlay{base: base, size: size, limit: int(maxBytes / overlayPage), pages: map[int64][]byte{}}
}

// ReadAt reads from the pages written so far, else from the base.
func (o *Overlay) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("cow: negative offset")
	}
	if off >= o.size {
		return 0, io.EOF
	}
	var err error
	if rest := o.size - off; int64(len(p)) > rest {
		p, err = p[:rest], io.EOF
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		pg, in := pos/overlayPage, int(pos%overlayPage)
		chunk := min(len(p)-n, overlayPage-in)
		if page, ok := o.pages[pg]; ok {
			copy(p[n:n+chunk], page[in:])
			n += chunk
			continue
		}
		// Read from the base up to the next page held in memory.
		for chunk < len(p)-n {
			if _, ok := o.pages[(pos+int64(chunk))/overlayPage]; ok {
				break
			}
			chunk = min(len(p)-n, chunk+overlayPage)
		}
		if _, rerr := o.base.ReadAt(p[n:n+chunk], pos); rerr != nil && !(errors.Is(rerr, io.EOF) && pos+int64(chunk) >= o.size) {
			return n, rerr
		}
		n += chunk
	}
	return n, err
}

// WriteAt stores p in memory.
func (o *Overlay) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > o.size {
		return 0, errors.New("cow: write outside the overlay")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		pg, in := pos/overlayPage, int(pos%overlayPage)
		page, ok := o.pages[pg]
		if !ok {
			if len(o.pages) >= o.limit {
				return n, ErrFull
			}
			page = make([]byte, overlayPage)
			end := min(int64(overlayPage), o.size-pg*overlayPage)
			if _, err := o.base.ReadAt(page[:end], pg*overlayPage); err != nil && !errors.Is(err, io.EOF) {
				return n, err
			}
			o.pages[pg] = page
		}
		n += copy(page[in:], p[n:])
	}
	return n, nil
}
