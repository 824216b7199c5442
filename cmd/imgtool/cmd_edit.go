package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"os/exec"
	"path"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"imgtool/fs/meta"
)

// maxEditSize is the largest file edit copies out (the ext2/3/4 writer's
// limit too).
const maxEditSize = 64 << 20

type editOptions struct {
	create bool
	mode   string
	owner  string
	json   bool
}

func newEditCmd(g *globalOptions) *cobra.Command {
	var opts editOptions
	cmd := &cobra.Command{
		Use:   "edit IMAGE [PART:]PATH",
		Short: "Edit a file of an image with your text editor",
		Long: `Copy a file of a FAT or ext2/3/4 partition of a raw image to a temporary file (readable
by you only, named after the file so that the editor picks its syntax), open it in
$VISUAL, else $EDITOR, else vi (notepad on Windows), and when you have saved a
different content, write it back in place through an undo log. The variable may hold
arguments ("code --wait"), split at spaces as a shell would, with quotes.

The file keeps its mode, owner, extended attributes and access and creation times;
its modification and change times become now. When the content is unchanged,
nothing is written. If the image changed while the editor was open, or writing back
fails, nothing is changed and your edited copy is kept; the message says where.

A path that does not exist is refused unless --create is given; the new file gets
--mode and --owner (ext2/3/4). Directories and symbolic links are refused.`,
		Example: `  imgtool edit raspios.img bootfs:/config.txt
  EDITOR=nano imgtool edit raspios.img rootfs:/etc/hostname
  imgtool edit --create raspios.img rootfs:/etc/motd`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEdit(cmd.Context(), opts, args, g)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.create, "create", false, "create the file when it does not exist")
	f.StringVar(&opts.mode, "mode", "644", "permission bits in octal of a file made by --create (ext2/3/4)")
	f.StringVar(&opts.owner, "owner", "0:0", "numeric owner uid:gid of a file made by --create (ext2/3/4)")
	f.BoolVar(&opts.json, "json", false, "print a JSON summary")
	return cmd
}

// editedFile is what edit learnt of the file before the editor ran.
type editedFile struct {
	exists   bool
	part     int // partition number
	data     []byte
	mode     iofs.FileMode // permission and special bits
	uid, gid uint32
}

func runEdit(ctx context.Context, opts editOptions, args []string, g *globalOptions) error {
	imagePath, spec := args[0], args[1]
	sel, name := splitPartPath(spec)
	if name == "." {
		return usagef("give the path of a file, e.g. rootfs:/etc/hostname")
	}
	newMode, _, err := parseMode(opts.mode)
	if err != nil {
		return err
	}
	newUID, newGID, err := parseOwner(opts.owner)
	if err != nil {
		return err
	}
	orig, err := readForEdit(imagePath, sel, spec, name, opts.create)
	if err != nil {
		return err
	}
	if !orig.exists {
		orig.mode, orig.uid, orig.gid = newMode, newUID, newGID
	}
	tmp, err := os.CreateTemp("", "imgtool-edit-*-"+tempBase(name))
	if err != nil {
		return fmt.Errorf("creating the temporary copy: %w", err)
	}
	tmpPath := tmp.Name()
	keep := false
	defer func() {
		if !keep {
			os.Remove(tmpPath)
		}
	}()
	_, err = tmp.Write(orig.data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the temporary copy %s: %w", tmpPath, err)
	}
	argv, err := editorCommand(os.Getenv, runtime.GOOS == "windows")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], tmpPath)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = g.stdin, g.stdout, g.stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("editor %q: %w; nothing was changed (set VISUAL or EDITOR to the editor you want)", strings.Join(argv, " "), err)
	}
	data, err := os.ReadFile(tmpPath)
	if err != nil {
		return fmt.Errorf("reading back %s: %w; nothing was changed", tmpPath, err)
	}
	sum := editSummary{Image: imagePath, Partition: orig.part, Path: name, Action: "edited", Files: 1, Bytes: int64(len(data))}
	if bytes.Equal(data, orig.data) {
		sum.Action, sum.Files, sum.Bytes = "unchanged", 0, 0
		if !orig.exists {
			sum.Action = "not created"
		}
		return printUnchanged(g, opts.json, sum)
	}
	if len(data) > maxEditSize {
		keep = true
		return fmt.Errorf("%s: %d bytes is more than imgtool writes to a file (%d); nothing was changed; your edited copy is kept in %s", spec, len(data), maxEditSize, tmpPath)
	}
	if !orig.exists {
		sum.Action = "created"
	}
	if err := writeBack(imagePath, sel, spec, name, orig, data, &sum); err != nil {
		keep = true
		return fmt.Errorf("%w; your edited copy is kept in %s", err, tmpPath)
	}
	return printEdit(g, opts.json, sum)
}

// readForEdit reads the file to edit, without holding the image.
func readForEdit(imagePath, sel, spec, name string, create bool) (*editedFile, error) {
	t, err := openTarget(imagePath, sel, false)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	fi, err := iofs.Lstat(t.fsys, name)
	switch {
	case errors.Is(err, iofs.ErrNotExist) && create:
		dir := path.Dir(name)
		if di, err := iofs.Stat(t.fsys, dir); err != nil || !di.IsDir() {
			return nil, fmt.Errorf("%s: its folder does not exist (create it with imgtool mkdir -p)", spec)
		}
		return &editedFile{part: t.part.Number}, nil
	case errors.Is(err, iofs.ErrNotExist):
		return nil, fmt.Errorf("%s: %w: check the path with imgtool ls, or use --create to make a new file", spec, err)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", spec, err)
	case fi.IsDir():
		return nil, usagef("%s is a directory: edit changes files (list it with imgtool ls)", spec)
	case fi.Mode()&iofs.ModeSymlink != 0:
		target := ""
		if st, ok := fi.Sys().(*meta.Stat); ok {
			target = " to " + st.Link
		}
		return nil, fmt.Errorf("%s is a symbolic link%s: edit the file it points to", spec, target)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file (%v): edit changes files", spec, fi.Mode().Type())
	case fi.Size() > maxEditSize:
		return nil, fmt.Errorf("%s: %d bytes is more than edit handles (%d); copy it out with imgtool get and back with imgtool put", spec, fi.Size(), maxEditSize)
	}
	data, err := iofs.ReadFile(t.fsys, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec, err)
	}
	e := &editedFile{exists: true, part: t.part.Number, data: data, mode: fi.Mode() & (iofs.ModePerm | iofs.ModeSetuid | iofs.ModeSetgid | iofs.ModeSticky)}
	if st, ok := fi.Sys().(*meta.Stat); ok {
		e.uid, e.gid = st.Uid, st.Gid
	}
	return e, nil
}

// writeBack stores data as the file, if the image still holds what was
// read.
func writeBack(imagePath, sel, spec, name string, orig *editedFile, data []byte, sum *editSummary) error {
	s, err := beginEdit(imagePath)
	if err != nil {
		return err
	}
	err = func() error {
		f, err := s.open(sel)
		if err != nil {
			return err
		}
		sum.Partition = f.part.Number
		cur, err := iofs.ReadFile(f.fsys, name)
		switch {
		case orig.exists && (err != nil || !bytes.Equal(cur, orig.data)):
			return fmt.Errorf("%s changed in the image while the editor was open; nothing was changed", spec)
		case !orig.exists && !errors.Is(err, iofs.ErrNotExist):
			return fmt.Errorf("%s appeared in the image while the editor was open; nothing was changed", spec)
		}
		if f.fat != nil {
			return editError(spec, f.fat.WriteFile(name, data, orig.mode, time.Now()))
		}
		return editError(spec, f.ext4.WriteFile(name, data, orig.mode, orig.uid, orig.gid))
	}()
	return s.finish(err)
}

// printUnchanged reports an edit that wrote nothing.
func printUnchanged(g *globalOptions, asJSON bool, sum editSummary) error {
	if asJSON {
		return printEdit(g, true, sum)
	}
	_, err := fmt.Fprintf(g.stdout, "%d:/%s: content unchanged; nothing written\n", sum.Partition, strings.TrimPrefix(sum.Path, "."))
	return err
}

// tempBase is the base name of the file, made safe for a temporary file
// name (os.CreateTemp treats "*" specially).
func tempBase(name string) string {
	b := path.Base(name)
	return strings.Map(func(r rune) rune {
		switch r {
		case '*', '\\', '/', ':', 0:
			return '_'
		}
		return r
	}, b)
}

// editorCommand returns the editor's argument list: $VISUAL, else
// $EDITOR, split as a shell splits words, else vi (notepad on Windows).
func editorCommand(getenv func(string) string, windows bool) ([]string, error) {
	for _, v := range []string{"VISUAL", "EDITOR"} {
		val := getenv(v)
		if strings.TrimSpace(val) == "" {
			continue
		}
		words, err := shellWords(val, !windows)
		if err != nil {
			return nil, usagef("$%s (%q): %v; fix the variable", v, val, err)
		}
		if len(words) > 0 {
			return words, nil
		}
	}
	if windows {
		return []string{"notepad"}, nil
	}
	return []string{"vi"}, nil
}

// shellWords splits s at unquoted spaces and tabs; single and double
// quotes group words, and with escapes a backslash takes the next
// character literally outside quotes (inside double quotes, only before "
// and \), as in a POSIX shell; not on Windows, where it separates path
// elements.
func shellWords(s string, escapes bool) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case escapes && r == '\\' && (quote == 0 || quote == '"' && i+1 < len(rs) && (rs[i+1] == '"' || rs[i+1] == '\\')):
			if i+1 >= len(rs) {
				return nil, errors.New("ends with a backslash")
			}
			i++
			cur.WriteRune(rs[i])
			inWord = true
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
