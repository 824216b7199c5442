package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"imgtool/fs"
	"imgtool/fusemount"
	"imgtool/part"
)

type mountOptions struct {
	daemon     bool
	allowOther bool
	noVerify   bool
	debug      bool
}

func newMountCmd(g *globalOptions) *cobra.Command {
	var opts mountOptions
	cmd := &cobra.Command{
		Use:   "mount IMAGE [PART] MOUNTPOINT",
		Short: "Mount the partitions of an image read-only (FUSE)",
		Long: `Make the files of an image's FAT and ext2/3/4 partitions visible at MOUNTPOINT, an
existing folder, read-only, without root or loop devices (FUSE). Every program can
then use them; owners, modes, times, links, device nodes and extended attributes are
shown as stored in the image.

PART is a partition number, a filesystem label or a GPT partition name, in any case.
Without PART, an image with a single filesystem is mounted as such; otherwise
MOUNTPOINT holds one folder per partition ("1-bootfs", "2-rootfs") and each
partition's raw bytes as a read-only file ("p1.img", "p2.img").

imgtool mount stays in the foreground until Ctrl-C (or SIGTERM) or until
"imgtool umount MOUNTPOINT" is run elsewhere; with --daemon it returns as soon as the
mount is ready and keeps serving in the background. If a program still has a file
open when Ctrl-C arrives, the mount is detached and imgtool exits when that file is
closed (or at a second Ctrl-C).

Needs /dev/fuse and, when not root, fusermount3 (package fuse3); on macOS, macFUSE.
Not available on Windows: use imgtool get to copy files out instead.

EXIT STATUS
  0  unmounted cleanly (foreground), or mounted and ready (--daemon)
  1  failure: no FUSE, bad mount point, unreadable image or partition
  2  bad usage`,
		Example: `  mkdir -p /tmp/root && imgtool mount raspios.img rootfs /tmp/root
  imgtool mount --daemon backup.img 2 /mnt/pi && ls -l /mnt/pi/etc && imgtool umount /mnt/pi
  imgtool mount --daemon backup.img /mnt/card    # /mnt/card/1-bootfs, 2-rootfs, p1.img, p2.img
  sudo imgtool mount --allow-other backup.img.xz 2 /srv/pi-root`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMount(cmd.Context(), opts, args, g)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.daemon, "daemon", "d", false, "return once mounted and serve in the background")
	f.BoolVar(&opts.allowOther, "allow-other", false, "let other users see the files (permissions in the image are then enforced; needs user_allow_other in /etc/fuse.conf when not root)")
	f.BoolVar(&opts.noVerify, "no-verify", false, "read despite metadata checksum errors")
	f.BoolVar(&opts.debug, "debug", false, "log every FUSE request to standard error (foreground only)")
	return cmd
}

func runMount(ctx context.Context, opts mountOptions, args []string, g *globalOptions) error {
	mp := args[len(args)-1]
	if err := fusemount.Available(); err != nil {
		return err
	}
	if opts.daemon && !fusemount.Background() {
		return startMountDaemon(ctx, opts, args, g)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	logger := log.New(g.stderr, "imgtool: ", 0)
	srv, closeImage, err := mountImage(args, opts, logger, g)
	if err != nil {
		return err
	}
	defer closeImage()
	if fusemount.Background() {
		if err := fusemount.NotifyReady(); err != nil {
			srv.Unmount()
			return err
		}
	} else {
		fmt.Fprintf(g.stderr, "imgtool: %s mounted read-only at %s; press Ctrl-C or run 'imgtool umount %s' to unmount\n", args[0], srv.Mountpoint(), mp)
	}

	select {
	case <-srv.Done():
		return nil // unmounted from outside
	case <-ctx.Done():
	}
	err = srv.Unmount()
	if !errors.Is(err, fusemount.ErrBusy) {
		return err
	}
	// A program still has a file open: detach now, serve it until it
	// closes the file, unless asked again to stop.
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	if err := srv.UnmountLazy(); err != nil {
		return err
	}
	fmt.Fprintf(g.stderr, "imgtool: %s is busy: detached it; exiting when the last open file is closed (Ctrl-C again to exit now)\n", srv.Mountpoint())
	select {
	case <-srv.Done():
		return nil
	case <-again:
		return fmt.Errorf("%s: exited while a program still had a file open in it", srv.Mountpoint())
	}
}

// startMountDaemon runs this command again in the background and returns
// once its mount is ready.
func startMountDaemon(ctx context.Context, opts mountOptions, args []string, g *globalOptions) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--daemon: finding this program: %w", err)
	}
	child := []string{"mount"}
	if opts.allowOther {
		child = append(child, "--allow-other")
	}
	if opts.noVerify {
		child = append(child, "--no-verify")
	}
	child = append(child, "--")
	child = append(child, args...)
	pid, err := fusemount.StartBackground(ctx, exe, child)
	if err != nil {
		var be *fusemount.BackgroundError
		if errors.As(err, &be) {
			return errors.New(be.Msg)
		}
		return err
	}
	mp, _ := filepath.Abs(args[len(args)-1])
	fmt.Fprintf(g.stderr, "imgtool: %s mounted read-only at %s (process %d); unmount with 'imgtool umount %s'\n", args[0], mp, pid, mp)
	return nil
}

// mountImage opens the image and mounts what args select. The returned
// function closes the image once the mount is gone.
func mountImage(args []string, opts mountOptions, logger *log.Logger, g *globalOptions) (*fusemount.Server, func(), error) {
	imagePath, mp := args[0], args[len(args)-1]
	fsName := imagePath
	if abs, err := filepath.Abs(imagePath); err == nil {
		fsName = abs
	}
	fopts := fusemount.Options{
		AllowOther: opts.allowOther,
		Debug:      opts.debug,
		Logger:     logger,
		FsName:     fsName,
	}
	if len(args) == 3 {
		t, err := openTarget(imagePath, args[1], opts.noVerify)
		if err != nil {
			return nil, nil, err
		}
		fopts.BlockSize = t.info.BlockSize
		srv, err := fusemount.Mount(mp, t.fsys, fopts)
		if err != nil {
			t.Close()
			return nil, nil, err
		}
		return srv, func() { t.Close() }, nil
	}

	img, err := openImage(imagePath)
	if err != nil {
		return nil, nil, err
	}
	tbl, err := part.Read(img, img.Size())
	if err != nil {
		img.Close()
		return nil, nil, fmt.Errorf("%s: reading the partition table: %w", imagePath, err)
	}
	var parts []fusemount.Partition
	for _, p := range tbl.Partitions {
		if p.Extended {
			continue
		}
		sec := p.Section()
		fp := fusemount.Partition{Number: p.Number, Label: p.Name, Raw: sec, Size: sec.Size()}
		fsys, info, err := fs.Open(sec, sec.Size(), fs.Options{NoVerify: opts.noVerify})
		switch {
		case err == nil:
			fp.FS, fp.BlockSize = fsys, info.BlockSize
			if info.Label != "" {
				fp.Label = info.Label
			}
		case errors.Is(err, fs.ErrUnknown), errors.Is(err, fs.ErrNoFiles):
		default:
			fmt.Fprintf(g.stderr, "imgtool: partition %d: %v; only its raw bytes (%s) are shown\n", p.Number, err, fusemount.RawName(p.Number))
		}
		parts = append(parts, fp)
	}
	var srv *fusemount.Server
	if len(parts) == 1 && parts[0].FS != nil {
		fopts.BlockSize = parts[0].BlockSize
		srv, err = fusemount.Mount(mp, parts[0].FS, fopts)
	} else {
		srv, err = fusemount.MountPartitions(mp, parts, fopts)
	}
	if err != nil {
		img.Close()
		return nil, nil, err
	}
	return srv, func() { img.Close() }, nil
}

type umountOptions struct {
	lazy bool
}

func newUmountCmd(g *globalOptions) *cobra.Command {
	var opts umountOptions
	cmd := &cobra.Command{
		Use:   "umount MOUNTPOINT",
		Short: "Unmount a folder mounted with imgtool mount",
		Long: `Unmount a folder mounted with imgtool mount (any FUSE mount, in fact; other
filesystems are refused). The imgtool mount process serving it then exits.

While a program still has a file or folder open inside (a shell whose current folder
is there counts), the unmount fails and says the mount point is busy; close that
program, or use --lazy to detach the mount now: it disappears from the folder at once
and is served until the last open file is closed.

EXIT STATUS
  0  unmounted (or detached, with --lazy)
  1  busy, not a FUSE mount, or another failure
  2  bad usage`,
		Example: `  imgtool umount /mnt/pi
  imgtool umount --lazy /mnt/pi`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUmount(cmd.Context(), opts, args, g)
		},
	}
	cmd.Flags().BoolVarP(&opts.lazy, "lazy", "l", false, "detach now even if busy; finish when the last open file is closed")
	return cmd
}

func runUmount(ctx context.Context, opts umountOptions, args []string, g *globalOptions) error {
	err := fusemount.Unmount(args[0], opts.lazy)
	if errors.Is(err, fusemount.ErrBusy) {
		return fmt.Errorf("%w; close it and retry, or detach now with 'imgtool umount --lazy %s'", err, args[0])
	}
	return err
}
