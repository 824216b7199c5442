package shrink

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"path"
	"strings"

	"imgtool/expand"
	"imgtool/fs"
	"imgtool/fs/fat"
	"imgtool/part"
)

// bootFS is the FAT partition that holds cmdline.txt.
type bootFS struct {
	p       *part.Partition
	cmdline string
}

// findBoot returns the first FAT partition with a cmdline.txt, or nil.
func findBoot(r ReadWriterAt, tbl *part.Table) *bootFS {
	for i := range tbl.Partitions {
		p := &tbl.Partitions[i]
		if p.Extended {
			continue
		}
		f, err := fat.New(p.Section(), p.Size)
		if err != nil {
			continue
		}
		if b, err := f.ReadFile("cmdline.txt"); err == nil {
			return &bootFS{p: p, cmdline: string(b)}
		}
	}
	return nil
}

// detect reports the expansion mechanism of the image held in r.
func detect(r ReadWriterAt, size int64, partNum int) (expand.Status, *bootFS, error) {
	tbl, err := part.Read(r, size)
	if err != nil {
		return expand.Status{}, nil, err
	}
	var root iofs.FS
	for i := range tbl.Partitions {
		p := tbl.Partitions[i]
		if p.Number == partNum {
			f, _, err := fs.Open(p.Section(), p.Size, fs.Options{})
			if err != nil {
				return expand.Status{}, nil, err
			}
			root = f
		}
	}
	boot := findBoot(r, tbl)
	cmd := ""
	if boot != nil {
		cmd = boot.cmdline
	}
	return expand.Detect(root, cmd), boot, nil
}

// arm detects the image's first-boot expansion and arms it, or installs
// imgtool's own. It returns the state afterwards and what it did.
func arm(rw ReadWriterAt, size int64, l *layout) (expand.Status, string, error) {
	st, boot, err := detect(rw, size, l.Partition)
	if err != nil {
		return st, "", err
	}
	if st.Armed {
		return st, "already armed: " + st.Detail, nil
	}
	setCmdline := func(text string) error {
		if boot == nil {
			return errors.New("no FAT partition holds cmdline.txt")
		}
		return fat.ReplaceFile(partRW(rw, boot.p), boot.p.Size, "cmdline.txt", []byte(text))
	}
	var action string
	switch st.Mechanism {
	case expand.RPiFirstboot, expand.RPiInitResize:
		init := "/" + expand.FirstbootPath
		if st.Mechanism == expand.RPiInitResize {
			init = "/" + expand.InitResizePath
		}
		if err := setCmdline(expand.SetInit(boot0(boot), init)); err != nil {
			return st, "", err
		}
		action = "cmdline.txt: init=" + init
	case expand.RPiResize:
		if err := setCmdline(expand.AddToken(boot0(boot), "resize")); err != nil {
			return st, "", err
		}
		action = `cmdline.txt: added "resize"`
		more, err := rearmRPiResize(rw, l)
		if err != nil {
			return st, "", err
		}
		action += more
	default: // none, or our own unit installed but disabled
		if err := installOwn(rw, l); err != nil {
			return st, "", err
		}
		action = "installed /" + expand.UnitPath + " and /" + expand.ScriptPath
	}
	after, _, err := detect(rw, size, l.Partition)
	if err != nil {
		return after, "", err
	}
	if !after.Armed {
		return after, "", fmt.Errorf("expansion (%s) still not armed after %s", after.Mechanism, action)
	}
	return after, action, nil
}

func boot0(b *bootFS) string {
	if b == nil {
		return ""
	}
	return b.cmdline
}

// rearmRPiResize enables rpi-resize.service again and, when its unit runs
// only on a first boot, adds the drop-in that lifts that condition.
func rearmRPiResize(rw ReadWriterAt, l *layout) (string, error) {
	p := l.last
	root, _, err := fs.Open(p.Section(), l.NewPartSize, fs.Options{})
	if err != nil {
		return "", err
	}
	unitPath, text := expand.FindRPiResizeUnit(root)
	var links []string
	for _, t := range expand.WantedBy(text) {
		link := "etc/systemd/system/" + t + ".wants/" + expand.RPiResizeUnit
		if _, err := root.Lstat(link); err != nil {
			links = append(links, link)
		}
	}
	dropIn := expand.RPiResizeDropIn(text)
	if dropIn != "" {
		if b, err := root.ReadFile(expand.RPiDropIn); err == nil && string(b) == dropIn {
			dropIn = ""
		}
	}
	if len(links) == 0 && dropIn == "" {
		return "", nil
	}
	w, err := engine.OpenWriter(partRW(rw, p), l.NewPartSize)
	if err != nil {
		return "", err
	}
	dm := &dirMaker{w: w, root: root}
	var did []string
	for _, link := range links {
		if err := dm.mkdirAll(path.Dir(link)); err != nil {
			return "", err
		}
		if err := w.Symlink("/"+unitPath, "/"+link); err != nil {
			return "", err
		}
		did = append(did, "enabled /"+link)
	}
	if dropIn != "" {
		if err := dm.mkdirAll(path.Dir(expand.RPiDropIn)); err != nil {
			return "", err
		}
		if err := w.WriteFile("/"+expand.RPiDropIn, []byte(dropIn), 0o644, 0, 0); err != nil {
			return "", err
		}
		did = append(did, "wrote /"+expand.RPiDropIn)
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	return "; " + strings.Join(did, "; "), nil
}

// installOwn writes imgtool's unit, script and enable link.
func installOwn(rw ReadWriterAt, l *layout) error {
	p := l.last
	root, _, err := fs.Open(p.Section(), l.NewPartSize, fs.Options{})
	if err != nil {
		return err
	}
	w, err := engine.OpenWriter(partRW(rw, p), l.NewPartSize)
	if err != nil {
		return err
	}
	dm := &dirMaker{w: w, root: root}
	for _, d := range []string{path.Dir(expand.ScriptPath), path.Dir(expand.UnitPath), expand.WantsDir} {
		if err := dm.mkdirAll(d); err != nil {
			return err
		}
	}
	if err := w.WriteFile("/"+expand.ScriptPath, []byte(expand.Script), 0o755, 0, 0); err != nil {
		return err
	}
	if err := w.WriteFile("/"+expand.UnitPath, []byte(expand.Unit), 0o644, 0, 0); err != nil {
		return err
	}
	if _, err := root.Lstat(expand.WantsLink); err != nil {
		if err := w.Symlink(expand.LinkTarget, "/"+expand.WantsLink); err != nil {
			return err
		}
	}
	return w.Close()
}

// dirMaker creates folders through a FileWriter, remembering those it
// made, which the reader opened before the writes does not see.
type dirMaker struct {
	w    FileWriter
	root fs.FS
	made map[string]bool
}

// mkdirAll creates dir (relative to the root) and its missing parents.
func (m *dirMaker) mkdirAll(dir string) error {
	if dir == "." || dir == "" || m.made[dir] {
		return nil
	}
	if fi, err := m.root.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("/%s exists and is not a directory", dir)
		}
		return nil
	}
	if err := m.mkdirAll(path.Dir(dir)); err != nil {
		return err
	}
	if err := m.w.Mkdir("/"+dir, 0o755); err != nil {
		return err
	}
	if m.made == nil {
		m.made = map[string]bool{}
	}
	m.made[dir] = true
	return nil
}
