package image

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
)

// Format is a container format that Open can recognise.
//
// Probe looks at the content of r (size bytes long) and, when it recognises
// its format, returns an Image that reads the disk held in the container.
// When it does not recognise the content it returns an error wrapping
// ErrWrongType. Any other error means the content is this format but cannot
// be read (damaged, unsupported version); Open reports it instead of falling
// back to raw.
//
// The returned Image must not close r: r belongs to Open, which closes it
// after the returned Image's own Close. Probe must not keep r beyond that.
type Format struct {
	Name  string
	Probe func(r io.ReaderAt, size int64) (Image, error)
}

// Option configures Open.
type Option func(*options)

type options struct {
	formats []Format
}

// WithFormats makes Open try the given container formats, in order, before
// falling back to raw. Several WithFormats options add up.
func WithFormats(fs ...Format) Option {
	return func(o *options) { o.formats = append(o.formats, fs...) }
}

// Open opens the regular file or block device at path read-only and returns
// it as an Image.
//
// The content (never the name) is offered to each format given with
// WithFormats, in order; the first whose Probe recognises it wins. When none
// does, the file itself is returned as a "raw" image, or a "device" image for
// a block device. When a prober fails with an error other than
// ErrWrongType, and no later prober recognises the content, Open returns all
// such errors joined, each prefixed with the name of its format, and does not
// fall back to raw.
//
// Closing the returned Image closes the file too.
func Open(path string, opts ...Option) (Image, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	base, err := openSource(path)
	if err != nil {
		return nil, err
	}
	img, err := probe(base, path, o.formats)
	if err != nil {
		base.Close()
		return nil, err
	}
	return img, nil
}

// probe offers base to each format in turn.
func probe(base *fileImage, path string, formats []Format) (Image, error) {
	var errs []error
	for _, f := range formats {
		name := f.Name
		if name == "" {
			name = "unnamed format"
		}
		if f.Probe == nil {
			errs = append(errs, fmt.Errorf("%s: no Probe function", name))
			continue
		}
		img, err := f.Probe(base, base.size)
		if err == nil && img == nil {
			err = errors.New("Probe returned neither an image nor an error")
		}
		if err == nil {
			return &owned{Image: img, base: base}, nil
		}
		// A prober that fails releases what it made; img is not used (it
		// may be a typed nil pointer in a non-nil interface).
		if errors.Is(err, ErrWrongType) {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("image: %s: cannot read it: %w", path, errors.Join(errs...))
	}
	return base, nil
}

// owned is a container image that owns the file it reads: its Close also
// closes the file.
type owned struct {
	Image
	base *fileImage
}

// Close closes the container image, then the file under it.
func (o *owned) Close() error {
	return errors.Join(o.Image.Close(), o.base.Close())
}

// Unwrap returns the container image, whose optional methods (such as a
// sequential Stream) the wrapper does not show.
func (o *owned) Unwrap() Image { return o.Image }

// As finds the first image in img's Unwrap chain that is a T, so that
// callers can reach a container's optional capabilities:
//
//	if s, ok := image.As[interface{ Stream() (io.ReadCloser, error) }](img); ok { … }
func As[T any](img Image) (T, bool) {
	for i := 0; i < 16 && img != nil; i++ {
		if t, ok := img.(T); ok {
			return t, true
		}
		u, ok := img.(interface{ Unwrap() Image })
		if !ok {
			break
		}
		img = u.Unwrap()
	}
	var zero T
	return zero, false
}

// openSource opens path as a raw file or a device image.
func openSource(path string) (*fileImage, error) {
	if isDeviceName(path) {
		return openDeviceImage(path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, explainOpen(path, err, false)
	}
	switch {
	case fi.IsDir():
		return nil, fmt.Errorf("image: %s is a directory, not an image; give the path of an image file or a device: %w", path, ErrNotRegular)
	case isDeviceMode(path, fi):
		return openDeviceImage(path)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("image: %s is a %s, not an image; give the path of an image file or a block device: %w",
			path, describeMode(fi.Mode()), ErrNotRegular)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, explainOpen(path, err, false)
	}
	// Check again on the descriptor: the path may have changed since Stat.
	fi, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("image: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("image: %s changed while being opened and is no longer a regular file: %w", path, ErrNotRegular)
	}
	return &fileImage{f: f, r: f, size: fi.Size(), format: "raw", sparse: true}, nil
}

// openDeviceImage opens a block device read-only and finds its size.
func openDeviceImage(path string) (*fileImage, error) {
	f, err := openDevice(path)
	if err != nil {
		return nil, explainOpen(path, err, true)
	}
	size, err := DeviceSize(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("image: %s: %w", path, err)
	}
	img := &fileImage{f: f, r: f, size: size, format: "device"}
	align, err := deviceAlignment(f, size)
	if err == nil {
		err = checkAlign(align)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("image: %s: %w", path, err)
	}
	if align > 1 {
		img.r = &alignedReader{r: f, align: align, size: size}
	}
	return img, nil
}

// explainOpen adds what to do to an error from opening path.
func explainOpen(path string, err error, device bool) error {
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return fmt.Errorf("image: %s does not exist; check the path: %w", path, err)
	case errors.Is(err, iofs.ErrPermission) && device:
		return fmt.Errorf("image: %w; %s", err, deviceAccessHint(path))
	case errors.Is(err, iofs.ErrPermission):
		return fmt.Errorf("image: %w; check the file's permissions or copy it somewhere readable", err)
	}
	return fmt.Errorf("image: %w", err)
}

// describeMode names a non-regular file type for messages.
func describeMode(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeDevice != 0:
		return "device"
	case m&os.ModeIrregular != 0:
		return "special file"
	}
	return "non-regular file"
}

// IsDevice reports whether path names a block device that Open would open as
// a "device" image (on macOS also the /dev/rdiskN character devices; on
// Windows the \\.\PhysicalDriveN and \\.\X: names).
func IsDevice(path string) bool {
	if isDeviceName(path) {
		return true
	}
	fi, err := os.Stat(path)
	return err == nil && isDeviceMode(path, fi)
}
