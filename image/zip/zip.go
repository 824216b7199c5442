// Package zip reads a disk image stored as a member of a zip archive (how
// some OS images are distributed, e.g. image.zip holding image.img).
//
// # Scope
//
// The archive is read with the standard library's archive/zip, including
// Zip64 for members over 4 GiB. The image is the member named with
// WithMember (the CLI's ARCHIVE.zip:member syntax), or else the largest
// member whose name ends in .img, .iso or .raw (any case), or else the
// largest member. A Stored member (zip -0) is read in place, at random,
// with no copy. A Deflated member cannot be read at random: Stream inflates
// it from the start, and the first ReadAt or Extents call inflates it once
// into a sparse temporary file (package image/spool). Size comes from the
// central directory and never needs that file.
//
// Every Image returned here implements spool.Streamer; Stream verifies the
// member's CRC-32 at its end.
//
// # Limits
//
// Only Stored and Deflated members are supported; encrypted members and
// other methods are refused with an error naming them. Random reads of a
// Stored member are not checked against its CRC-32 (only Stream is).
// Extents of a Stored member is one Data extent.
//
// Specification: PKWARE APPNOTE.TXT, as implemented by archive/zip.
//
// # Security
//
// Archives are untrusted. archive/zip bounds the central directory by the
// file size; the data of a Stored member is checked to lie inside the file;
// inflating a Deflated member must give exactly the size recorded in the
// central directory, and its CRC-32 must match, or reading fails.
package zip

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"imgtool/image"
	"imgtool/image/spool"
)

// Format lets image.Open recognise zip archives.
var Format = image.Format{Name: "zip", Probe: Probe}

// NewFormat returns a Format whose images are opened with opts.
func NewFormat(opts ...Option) image.Format {
	return image.Format{Name: "zip", Probe: func(r io.ReaderAt, size int64) (image.Image, error) {
		return probe(r, size, opts)
	}}
}

// ErrNoMember is wrapped when the archive holds no file, or not the one
// named with WithMember.
var ErrNoMember = errors.New("zip: member not found")

// ErrUnsupported is wrapped when the member is encrypted or compressed
// with a method other than Stored or Deflated.
var ErrUnsupported = errors.New("zip: unsupported member")

// Option configures New.
type Option func(*config)

type config struct {
	member string
	spool  []spool.Option
}

// WithMember selects the member by its full name in the archive.
func WithMember(name string) Option { return func(c *config) { c.member = name } }

// WithSpool passes options (temporary folder, progress) to the spooling of
// a Deflated member.
func WithSpool(opts ...spool.Option) Option {
	return func(c *config) { c.spool = append(c.spool, opts...) }
}

// Probe recognises a zip archive by the signature at its start (a local
// file header, or the end of central directory of an empty archive) and
// opens it with New; other content gives an error wrapping
// image.ErrWrongType.
func Probe(r io.ReaderAt, size int64) (image.Image, error) { return probe(r, size, nil) }

func probe(r io.ReaderAt, size int64, opts []Option) (image.Image, error) {
	var m [4]byte
	if size < 22 {
		return nil, image.ErrWrongType
	}
	if _, err := r.ReadAt(m[:], 0); err != nil {
		return nil, fmt.Errorf("zip: reading the header: %w", err)
	}
	if string(m[:]) != "PK\x03\x04" && string(m[:]) != "PK\x05\x06" {
		return nil, image.ErrWrongType
	}
	return New(r, size, opts...)
}

// Image is a member of a zip archive read as a disk image. Its methods may
// be called from several goroutines at once.
type Image struct {
	f      *zip.File
	stored *io.SectionReader // Stored member, or nil
	sp     *spool.Image      // Deflated member, or nil
}

var (
	_ image.Image    = (*Image)(nil)
	_ spool.Streamer = (*Image)(nil)
)

// New opens the zip archive r (size bytes) and returns the image held in
// the chosen member.
func New(r io.ReaderAt, size int64, opts ...Option) (*Image, error) {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, fmt.Errorf("%w: %w", &image.FormatError{Format: "zip", Off: 0, Msg: "cannot read the archive's directory"}, err)
	}
	f, err := choose(zr.File, c.member)
	if err != nil {
		return nil, err
	}
	if f.Flags&1 != 0 {
		return nil, fmt.Errorf("zip: member %s is encrypted; extract it with unzip first: %w", f.Name, ErrUnsupported)
	}
	if f.UncompressedSize64 > 1<<62 || f.CompressedSize64 > 1<<62 {
		return nil, &image.FormatError{Format: "zip", Off: 0, Msg: fmt.Sprintf("member %s has impossible sizes", f.Name)}
	}
	img := &Image{f: f}
	switch f.Method {
	case zip.Store:
		off, err := f.DataOffset()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", &image.FormatError{Format: "zip", Off: 0, Msg: "bad local header of member " + f.Name}, err)
		}
		n := int64(f.UncompressedSize64)
		if int64(f.CompressedSize64) != n {
			return nil, &image.FormatError{Format: "zip", Off: off, Msg: fmt.Sprintf("stored member %s has compressed size %d but size %d", f.Name, f.CompressedSize64, n)}
		}
		if off < 0 || off > size || n > size-off {
			return nil, &image.FormatError{Format: "zip", Off: off, Msg: fmt.Sprintf("member %s (%d bytes) runs past the end of the archive", f.Name, n)}
		}
		img.stored = io.NewSectionReader(r, off, n)
	case zip.Deflate:
		sopts := append(c.spool[:len(c.spool):len(c.spool)], spool.WithSize(int64(f.UncompressedSize64)))
		img.sp = spool.New("zip", img.open, sopts...)
	default:
		return nil, fmt.Errorf("zip: member %s uses compression method %d; only Stored and Deflated are supported, extract it with unzip first: %w",
			f.Name, f.Method, ErrUnsupported)
	}
	return img, nil
}

// choose picks the member named name, or the image-like member.
func choose(files []*zip.File, name string) (*zip.File, error) {
	var best, bestImg *zip.File
	for _, f := range files {
		if f.FileInfo().IsDir() {
			continue
		}
		if name != "" {
			if f.Name == name {
				return f, nil
			}
			continue
		}
		if best == nil || f.UncompressedSize64 > best.UncompressedSize64 {
			best = f
		}
		switch strings.ToLower(path.Ext(f.Name)) {
		case ".img", ".iso", ".raw":
			if bestImg == nil || f.UncompressedSize64 > bestImg.UncompressedSize64 {
				bestImg = f
			}
		}
	}
	switch {
	case name != "":
		return nil, fmt.Errorf("zip: no member named %q in the archive: %w", name, ErrNoMember)
	case bestImg != nil:
		return bestImg, nil
	case best != nil:
		return best, nil
	}
	return nil, fmt.Errorf("zip: the archive holds no file: %w", ErrNoMember)
}

// Format returns "zip".
func (z *Image) Format() string { return "zip" }

// Member returns the name of the member read as the image.
func (z *Image) Member() string { return z.f.Name }

// Stored reports whether the member is read in place (true) or inflated
// (false).
func (z *Image) Stored() bool { return z.stored != nil }

// Size returns the member's uncompressed size.
func (z *Image) Size() int64 { return int64(z.f.UncompressedSize64) }

// ReadAt reads the member's uncompressed bytes.
func (z *Image) ReadAt(p []byte, off int64) (int, error) {
	if z.stored != nil {
		if off < 0 {
			return 0, fmt.Errorf("zip: read at negative offset %d", off)
		}
		return z.stored.ReadAt(p, off)
	}
	return z.sp.ReadAt(p, off)
}

// Extents returns one Data extent for a Stored member; an inflated one
// reports the zero chunks found while spooling.
func (z *Image) Extents() ([]image.Extent, error) {
	if z.stored != nil {
		if z.Size() == 0 {
			return []image.Extent{}, nil
		}
		return []image.Extent{{Off: 0, Len: z.Size(), Kind: image.Data}}, nil
	}
	return z.sp.Extents()
}

// Stream returns the member's content from the start, verifying its
// CRC-32 at the end.
func (z *Image) Stream() (io.ReadCloser, error) {
	if z.sp != nil {
		return z.sp.Stream()
	}
	return z.open()
}

func (z *Image) open() (io.ReadCloser, error) {
	rc, err := z.f.Open()
	if err != nil {
		return nil, fmt.Errorf("zip: member %s: %w", z.f.Name, err)
	}
	return &member{rc: rc, name: z.f.Name}, nil
}

type member struct {
	rc   io.ReadCloser
	name string
	n    int64
}

func (m *member) Read(p []byte) (int, error) {
	n, err := m.rc.Read(p)
	m.n += int64(n)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("zip: member %s, after %d bytes: %w", m.name, m.n, err)
	}
	return n, err
}

func (m *member) Close() error { return m.rc.Close() }

// Close releases the temporary file, if any. It does not close r.
func (z *Image) Close() error {
	if z.sp != nil {
		return z.sp.Close()
	}
	return nil
}

// Spool decompresses the image into its temporary file now when it cannot
// be read at random (a stream without an index), so that damage shows up
// as an error here rather than as a short image later; it does nothing for
// an image read at random.
func (z *Image) Spool() error {
	if z.sp == nil {
		return nil
	}
	return z.sp.Spool()
}
