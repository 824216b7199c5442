//go:build linux || darwin

package fusemount

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Server is a mounted filesystem being served.
type Server struct {
	srv        *fuse.Server
	mountpoint string
	done       chan struct{}
}

// Mount serves fsys read-only at mountpoint, an existing directory, and
// returns once the kernel has the mount. The returned Server serves until
// it is unmounted (Server.Unmount, Unmount, fusermount3 -u, umount).
func Mount(mountpoint string, fsys iofs.FS, opts Options) (*Server, error) {
	opts = opts.withDefaults()
	mp, err := checkMountpoint(mountpoint)
	if err != nil {
		return nil, err
	}
	t := newTree(fsys, 0, opts.BlockSize, opts.Logger)
	root, err := t.rootNode()
	if err != nil {
		return nil, fmt.Errorf("fusemount: reading the root directory: %w", err)
	}
	return serve(mp, root, root.ino, opts)
}

// MountPartitions serves several partitions read-only at mountpoint: a
// folder per partition with a filesystem, named by FolderName, and the
// raw bytes of each partition as a file named by RawName. A partition
// whose root directory cannot be read gets no folder (the error goes to
// Options.Logger); its raw file stays.
func MountPartitions(mountpoint string, parts []Partition, opts Options) (*Server, error) {
	opts = opts.withDefaults()
	mp, err := checkMountpoint(mountpoint)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	top := &topNode{created: now}
	seen := map[string]bool{}
	for _, p := range parts {
		if p.Number <= 0 || p.Number >= 1<<(64-partShift-2) {
			return nil, fmt.Errorf("fusemount: partition number %d out of range", p.Number)
		}
		base := uint64(p.Number) << partShift
		if p.FS != nil {
			bs := p.BlockSize
			if bs <= 0 || bs > 1<<20 {
				bs = 4096
			}
			root, err := newTree(p.FS, base, bs, opts.Logger).rootNode()
			name := FolderName(p.Number, p.Label)
			switch {
			case err != nil:
				opts.Logger.Printf("partition %d: %v", p.Number, err)
			case seen[name]:
				return nil, fmt.Errorf("fusemount: two partitions named %q", name)
			default:
				seen[name] = true
				top.folders = append(top.folders, folder{name: name, root: root})
			}
		}
		if p.Raw != nil {
			name := RawName(p.Number)
			if seen[name] {
				return nil, fmt.Errorf("fusemount: two partitions named %q", name)
			}
			seen[name] = true
			top.raws = append(top.raws, &rawNode{
				name: name, ino: base | (1<<partShift - 1), r: p.Raw, size: max(p.Size, 0),
				created: now, lg: opts.Logger,
			})
		}
	}
	return serve(mp, top, 1, opts)
}

func serve(mp string, root gofs.InodeEmbedder, rootIno uint64, opts Options) (*Server, error) {
	if err := preflight(); err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	mo := fuse.MountOptions{
		AllowOther: opts.AllowOther,
		FsName:     opts.FsName,
		Name:       opts.Subtype,
		Debug:      opts.Debug,
		Logger:     opts.Logger,
		Options:    []string{"ro"},
		// Large reads: the kernel asks for up to 1 MiB at a time.
		MaxReadAhead: 1 << 20,
	}
	if opts.AllowOther {
		mo.Options = append(mo.Options, "default_permissions")
	}
	platformMountOptions(&mo)
	gopts := &gofs.Options{
		MountOptions:    mo,
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		RootStableAttr:  &gofs.StableAttr{Ino: rootIno},
		Logger:          opts.Logger,
	}
	srv, err := gofs.Mount(mp, root, gopts)
	if err != nil {
		return nil, fmt.Errorf("fusemount: mounting on %s: %w", mp, err)
	}
	s := &Server{srv: srv, mountpoint: mp, done: make(chan struct{})}
	go func() {
		srv.Wait()
		close(s.done)
	}()
	return s, nil
}

// Mountpoint returns the absolute path of the mount point.
func (s *Server) Mountpoint() string { return s.mountpoint }

// Done is closed once the filesystem is unmounted and no longer served.
func (s *Server) Done() <-chan struct{} { return s.done }

// Wait blocks until the filesystem is unmounted, by Unmount or from
// outside (fusermount3 -u, umount).
func (s *Server) Wait() { <-s.done }

// Unmount unmounts the filesystem and waits until it is no longer served.
// It fails with an error wrapping ErrBusy while a program has a file or
// folder open inside; UnmountLazy detaches it anyway.
func (s *Server) Unmount() error { return s.unmount(false) }

// UnmountLazy detaches the mount at once; it is served until the last
// open file inside is closed, and Done is closed then.
func (s *Server) UnmountLazy() error { return s.unmount(true) }

func (s *Server) unmount(lazy bool) error {
	select {
	case <-s.done:
		return nil
	default:
	}
	if err := Unmount(s.mountpoint, lazy); err != nil {
		if errors.Is(err, ErrNotMounted) {
			// Unmounted from outside meanwhile.
			select {
			case <-s.done:
				return nil
			case <-time.After(5 * time.Second):
			}
		}
		return err
	}
	if !lazy {
		<-s.done
	}
	return nil
}

// Available reports whether FUSE can be used here; its error says what to
// install.
func Available() error { return preflight() }

// checkMountpoint returns the absolute path of an existing directory.
func checkMountpoint(mountpoint string) (string, error) {
	mp, err := filepath.Abs(mountpoint)
	if err != nil {
		return "", fmt.Errorf("fusemount: %w", err)
	}
	st, err := os.Stat(mp)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return "", fmt.Errorf("fusemount: mount point %s does not exist; create it first (mkdir %s)", mp, mp)
	case err != nil:
		return "", fmt.Errorf("fusemount: mount point: %w", err)
	case !st.IsDir():
		return "", fmt.Errorf("fusemount: mount point %s is not a directory", mp)
	}
	return mp, nil
}

func sortedKeys(m map[string][]byte) []string {
	return slices.Sorted(maps.Keys(m))
}
