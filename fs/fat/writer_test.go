package fat

import (
	"bytes"
	"errors"
	"fmt"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"imgtool/fs/meta"
	"imgtool/internal/testimg"
)

// The writer is checked against three oracles after every operation:
// fsck.vfat -n (clean, and its free-cluster count equals our Usage), the
// listing of mdir -/ -b, and the content mcopy extracts, all compared with
// a model of what the test wrote; our reader reads everything back too.

// wtSpec is a test filesystem: mkfs.vfat arguments and image size.
type wtSpec struct {
	variant Variant
	size    int64
	args    []string
}

var wtSpecs = []wtSpec{
	{FAT12, 4 << 20, []string{"-F", "12", "-s", "4"}},
	{FAT16, 16 << 20, []string{"-F", "16", "-s", "4"}},
	{FAT32, 40 << 20, []string{"-F", "32", "-s", "1"}},
}

// wtImage makes an image with mkfs.vfat in a temporary folder.
func wtImage(t testing.TB, sp wtSpec, extra ...string) string {
	t.Helper()
	testimg.NeedTools(t, "mkfs.vfat", "fsck.vfat", "mdir", "mcopy")
	img := filepath.Join(t.TempDir(), "fs.img")
	testimg.Sparse(t, img, sp.size)
	args := append(append(slices.Clone(sp.args), extra...), "-i", "12345678", img)
	testimg.Run(t, "mkfs.vfat", args...)
	return img
}

// wtOpen opens a Writer on an image file; the file closes with the test.
func wtOpen(t testing.TB, img string) *Writer {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	w, err := OpenWriter(f, st.Size())
	if err != nil {
		t.Fatalf("OpenWriter: %v", err)
	}
	w.Clock = func() time.Time { return time.Date(2024, 5, 6, 7, 8, 10, 0, time.UTC) }
	return w
}

var wtSummary = regexp.MustCompile(`(?m)^.*: \d+ files, (\d+)/(\d+) clusters$`)

// wtFsck runs fsck.vfat -n, fails unless it is clean (exit 0, no message
// besides its banner and summary) and returns the free clusters it counts.
func wtFsck(t testing.TB, img string) int64 {
	t.Helper()
	p, err := testimg.LookPath("fsck.vfat")
	if err != nil {
		testimg.Skip(t, "fsck.vfat not installed")
	}
	out, err := exec.Command(p, "-n", img).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	m := wtSummary.FindStringSubmatch(string(out))
	if err != nil || len(lines) != 2 || m == nil {
		t.Fatalf("fsck.vfat -n: %v\n%s", err, out)
	}
	used, _ := strconv.ParseInt(m[1], 10, 64)
	total, _ := strconv.ParseInt(m[2], 10, 64)
	return total - used
}

// wtModel is what the test expects the filesystem to hold.
type wtModel struct {
	files map[string][]byte
	dirs  map[string]bool
}

func newWtModel() *wtModel {
	return &wtModel{files: map[string][]byte{}, dirs: map[string]bool{}}
}

// wtCheck compares the image with the model through every oracle.
func wtCheck(t testing.TB, img string, m *wtModel) {
	t.Helper()
	free := wtFsck(t, img)

	// Listing.
	var want []string
	for p := range m.files {
		want = append(want, p)
	}
	for p := range m.dirs {
		want = append(want, p+"/")
	}
	slices.Sort(want)
	var got []string
	for _, l := range strings.Split(testimg.RunEnv(t, utf8Env, "mdir", "-/", "-b", "-a", "-i", img), "\n") {
		if l = strings.TrimPrefix(l, "::/"); l != "" {
			got = append(got, l)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("mdir lists\n%q\nwant\n%q", got, want)
	}

	// Content, extracted by mcopy.
	if len(want) > 0 {
		dst := t.TempDir()
		testimg.RunEnv(t, utf8Env, "mcopy", "-s", "-n", "-i", img, "::/*", dst)
		for p, data := range m.files {
			b, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(p)))
			if err != nil {
				t.Fatalf("mcopy: %v", err)
			}
			if !bytes.Equal(b, data) {
				t.Fatalf("mcopy: %s has %d bytes, want %d (or content differs)", p, len(b), len(data))
			}
		}
	}

	// Our reader.
	fh, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	st, _ := fh.Stat()
	fsys, err := New(fh, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	for p, data := range m.files {
		b, err := fsys.ReadFile(p)
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("reader: %s: %v (%d bytes, want %d)", p, err, len(b), len(data))
		}
	}
	n := 0
	err = iofs.WalkDir(fsys, ".", func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil || n != len(want)+1 {
		t.Fatalf("reader walk: %v, %d entries, want %d", err, n, len(want)+1)
	}
	u, err := fsys.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if info, err := Identify(fh, st.Size()); err != nil || info.FreeBlocks >= 0 && info.FreeBlocks != free {
		t.Fatalf("FSInfo free count: %v %v, fsck.vfat counts %d", info, err, free)
	}
	if u.Free/fsys.ClusterSize() != free {
		t.Fatalf("free clusters: Usage says %d, fsck.vfat %d", u.Free/fsys.ClusterSize(), free)
	}
}

// wtBytes returns n pseudo-random bytes.
func wtBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// wtUnchanged runs op, which must fail with an error matching want, and
// checks that the image did not change.
func wtUnchanged(t *testing.T, img string, want error, op func() error) {
	t.Helper()
	before := testimg.FileSum(t, img)
	err := op()
	if err == nil || want != nil && !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
	if testimg.FileSum(t, img) != before {
		t.Fatalf("failed operation (%v) changed the image", err)
	}
}

func TestWriterOps(t *testing.T) {
	for _, sp := range wtSpecs {
		t.Run(sp.variant.String(), func(t *testing.T) {
			img := wtImage(t, sp)
			w := wtOpen(t, img)
			m := newWtModel()
			cs := int(w.g.clusterSize)
			mtime := time.Date(2023, 3, 4, 5, 6, 7, 0, time.UTC)
			step := 0
			write := func(p string, data []byte) {
				t.Helper()
				if err := w.WriteFile(p, data, 0o644, mtime); err != nil {
					t.Fatalf("WriteFile(%q): %v", p, err)
				}
				m.files[p] = data
				wtCheck(t, img, m)
				step++
			}
			mkdir := func(p string) {
				t.Helper()
				if err := w.MkdirAll(p); err != nil {
					t.Fatalf("MkdirAll(%q): %v", p, err)
				}
				for d := p; d != "."; d = filepath.ToSlash(filepath.Dir(d)) {
					m.dirs[d] = true
				}
				wtCheck(t, img, m)
			}
			write("empty.txt", nil)
			write("one.bin", []byte{42})
			write("cluster.bin", wtBytes(1, cs))
			write("many.bin", wtBytes(2, 50*cs+17))
			write("A rather long file name, with spaces.txt", []byte("long\n"))
			write("ünïcödé ñame.txt", []byte("unicode\n"))
			write("日本語のファイル名.txt", []byte("cjk\n"))
			write("x.y.z.tar.gz", []byte("dots\n"))
			write(".hidden", []byte("dot\n"))
			mkdir("boot/overlays")
			mkdir("a/b/c/d")
			write("a/b/c/d/deep.txt", wtBytes(3, 3*cs))
			write("boot/overlays/README", []byte("readme\n"))

			// An all-lower-case 8.3 name takes one slot with the NT flags.
			write("cmdline.txt", []byte("console=serial0\n"))
			d, _, n, err := w.locate("test", "cmdline.txt")
			if err != nil || n == nil {
				t.Fatalf("locate: %v", err)
			}
			if s := w.entrySlots(d, n); len(s) != 1 || string(n.short[:]) != "CMDLINE TXT" || d.slot(s[0])[12] != ntLowerBase|ntLowerExt {
				t.Fatalf("cmdline.txt: slots %v, short %q", s, n.short)
			}

			// Names differing only in case name the same file, which keeps its name.
			write("Config.txt", []byte("v1\n"))
			if err := w.WriteFile("CONFIG.TXT", []byte("version 2\n"), 0o644, mtime); err != nil {
				t.Fatal(err)
			}
			m.files["Config.txt"] = []byte("version 2\n")
			wtCheck(t, img, m)

			// Replace larger, smaller, empty.
			write("many.bin", wtBytes(4, 80*cs+1))
			write("many.bin", []byte("small"))
			write("cluster.bin", nil)
			write("empty.txt", wtBytes(5, 2*cs))

			// Truncate: grow with zeros, shrink, to zero, from zero.
			trunc := func(p string, size int) {
				t.Helper()
				if err := w.Truncate(p, int64(size)); err != nil {
					t.Fatalf("Truncate(%q, %d): %v", p, size, err)
				}
				old := m.files[p]
				nb := make([]byte, size)
				copy(nb, old)
				m.files[p] = nb
				wtCheck(t, img, m)
			}
			trunc("one.bin", 3*cs+5)
			trunc("one.bin", cs/2)
			trunc("one.bin", cs/2+10)
			trunc("many.bin", 0)
			trunc("many.bin", 7)
			trunc("cluster.bin", 2*cs)

			// Read-only and times.
			if err := w.WriteFile("ro.txt", []byte("ro"), 0o444, mtime.Add(time.Second+120*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			m.files["ro.txt"] = []byte("ro")
			wtCheck(t, img, m)
			fsys := w.reader()
			fi, err := fsys.Stat("ro.txt")
			if err != nil {
				t.Fatal(err)
			}
			// 2-second resolution for the write time, 10 ms for the creation time.
			if fi.Mode() != 0o444 || !fi.ModTime().Equal(mtime.Add(time.Second)) {
				t.Fatalf("ro.txt: mode %v mtime %v", fi.Mode(), fi.ModTime())
			}
			if ms := fi.Sys().(*meta.Stat); !ms.Crtime.Equal(mtime.Add(time.Second + 120*time.Millisecond)) {
				t.Fatalf("ro.txt: crtime %v", ms.Crtime)
			}
			fi, err = fsys.Stat("boot")
			if err != nil || !fi.IsDir() || !fi.ModTime().Equal(w.now()) {
				t.Fatalf("boot: %v %v", fi, err)
			}

			// Failures that change nothing.
			wtUnchanged(t, img, ErrNotEmpty, func() error { return w.Remove("a") })
			wtUnchanged(t, img, iofs.ErrNotExist, func() error { return w.WriteFile("nope/x.txt", nil, 0o644, mtime) })
			wtUnchanged(t, img, errNotDir, func() error { return w.WriteFile("one.bin/x.txt", nil, 0o644, mtime) })
			wtUnchanged(t, img, errIsDir, func() error { return w.WriteFile("boot", nil, 0o644, mtime) })
			wtUnchanged(t, img, ErrBadName, func() error { return w.WriteFile(strings.Repeat("n", 256), nil, 0o644, mtime) })
			wtUnchanged(t, img, ErrBadName, func() error { return w.WriteFile("a:b", nil, 0o644, mtime) })
			wtUnchanged(t, img, ErrBadName, func() error { return w.WriteFile("trailing.", nil, 0o644, mtime) })
			wtUnchanged(t, img, iofs.ErrExist, func() error { return w.Mkdir("boot") })
			wtUnchanged(t, img, iofs.ErrNotExist, func() error { return w.Remove("missing") })
			wtUnchanged(t, img, errIsDir, func() error { return w.Truncate("boot", 0) })
			wtUnchanged(t, img, iofs.ErrInvalid, func() error { return w.Remove(".") })
			wtUnchanged(t, img, ErrFull, func() error {
				return w.WriteFile("huge.bin", make([]byte, sp.size), 0o644, mtime)
			})
			wtUnchanged(t, img, ErrFull, func() error { return w.Truncate("one.bin", sp.size) })
			write(strings.Repeat("n", 255), []byte("255"))

			// Removal.
			rm := func(p string, all bool) {
				t.Helper()
				var err error
				if all {
					err = w.RemoveAll(p)
				} else {
					err = w.Remove(p)
				}
				if err != nil {
					t.Fatalf("remove %q: %v", p, err)
				}
				for k := range m.files {
					if k == p || strings.HasPrefix(k, p+"/") {
						delete(m.files, k)
					}
				}
				for k := range m.dirs {
					if k == p || strings.HasPrefix(k, p+"/") {
						delete(m.dirs, k)
					}
				}
				wtCheck(t, img, m)
			}
			rm("one.bin", false)
			rm("日本語のファイル名.txt", false)
			rm("boot/overlays/README", false)
			rm("boot/overlays", false)
			rm("a", true)
			if err := w.Remove("CONFIG.TXT"); err != nil {
				t.Fatal(err)
			}
			delete(m.files, "Config.txt")
			wtCheck(t, img, m)
			if err := w.RemoveAll("not/there"); err != nil {
				t.Fatalf("RemoveAll of a missing path: %v", err)
			}
			// Reuse of the freed slots and clusters.
			write("after removal with a long name.txt", wtBytes(6, 5*cs))
			mkdir("boot/again")

			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := w.WriteFile("x", nil, 0o644, mtime); !errors.Is(err, iofs.ErrClosed) {
				t.Fatalf("after Close: %v", err)
			}
			wtCheck(t, img, m)
		})
	}
}

func TestWriterBigDir(t *testing.T) {
	for _, sp := range wtSpecs {
		t.Run(sp.variant.String(), func(t *testing.T) {
			img := wtImage(t, sp)
			w := wtOpen(t, img)
			m := newWtModel()
			mtime := time.Date(2022, 1, 2, 3, 4, 6, 0, time.UTC)
			// FAT32's root directory grows like any other.
			for _, dir := range []string{"big/", ""} {
				if dir != "" {
					if err := w.Mkdir("big"); err != nil {
						t.Fatal(err)
					}
					m.dirs["big"] = true
				}
				count := 500
				if dir == "" {
					count = 20
					if sp.variant == FAT32 {
						count = 300
					}
				}
				for i := range count {
					p := fmt.Sprintf("%sfile number %03d with a long name.txt", dir, i)
					data := []byte(p)
					if err := w.WriteFile(p, data, 0o644, mtime); err != nil {
						t.Fatalf("WriteFile(%q): %v", p, err)
					}
					m.files[p] = data
				}
			}
			wtCheck(t, img, m)
			// Remove every other file, then add some back into the holes.
			for i := 0; i < 500; i += 2 {
				p := fmt.Sprintf("big/file number %03d with a long name.txt", i)
				if err := w.Remove(p); err != nil {
					t.Fatal(err)
				}
				delete(m.files, p)
			}
			for i := range 100 {
				p := fmt.Sprintf("big/new %d.dat", i)
				if err := w.WriteFile(p, []byte(p), 0o644, mtime); err != nil {
					t.Fatal(err)
				}
				m.files[p] = []byte(p)
			}
			wtCheck(t, img, m)
			if err := w.RemoveAll("big"); err != nil {
				t.Fatal(err)
			}
			for k := range m.files {
				if strings.HasPrefix(k, "big/") {
					delete(m.files, k)
				}
			}
			delete(m.dirs, "big")
			wtCheck(t, img, m)
		})
	}
}

func TestWriterFull(t *testing.T) {
	for _, sp := range wtSpecs {
		t.Run(sp.variant.String(), func(t *testing.T) {
			img := wtImage(t, sp)
			w := wtOpen(t, img)
			m := newWtModel()
			mtime := time.Date(2021, 6, 7, 8, 9, 10, 0, time.UTC)
			if err := w.Mkdir("d"); err != nil {
				t.Fatal(err)
			}
			m.dirs["d"] = true
			chunk := int(sp.size / 8)
			var i int
			for i = 0; ; i++ {
				free, cs := w.Free()
				if free*cs < int64(chunk) {
					break
				}
				p := fmt.Sprintf("d/fill %d.bin", i)
				data := wtBytes(uint64(i), chunk)
				if err := w.WriteFile(p, data, 0o644, mtime); err != nil {
					t.Fatalf("WriteFile(%q) with %d clusters free: %v", p, free, err)
				}
				m.files[p] = data
			}
			wtCheck(t, img, m)
			wtUnchanged(t, img, ErrFull, func() error {
				return w.WriteFile("d/one more.bin", make([]byte, chunk), 0o644, mtime)
			})
			wtUnchanged(t, img, ErrFull, func() error {
				return w.WriteFile("d/fill 0.bin", make([]byte, chunk), 0o644, mtime)
			})
			// Use up the rest exactly: the entry first (the directory may
			// need a cluster), then the content.
			if err := w.WriteFile("d/rest.bin", nil, 0o644, mtime); err != nil {
				t.Fatal(err)
			}
			free, cs := w.Free()
			rest := wtBytes(99, int(free*cs))
			if err := w.WriteFile("d/rest.bin", rest, 0o644, mtime); err != nil {
				t.Fatal(err)
			}
			m.files["d/rest.bin"] = rest
			wtCheck(t, img, m)
			if f, _ := w.Free(); f != 0 {
				t.Fatalf("%d clusters free after filling", f)
			}
			wtUnchanged(t, img, ErrFull, func() error { return w.WriteFile("d/x", []byte{1}, 0o644, mtime) })
			wtUnchanged(t, img, ErrFull, func() error { return w.Mkdir("d/sub") })
			wtUnchanged(t, img, ErrFull, func() error { return w.Truncate("d/rest.bin", free*cs+1) })
			// Empty files need no cluster.
			if err := w.WriteFile("d/empty", nil, 0o644, mtime); err != nil {
				t.Fatal(err)
			}
			m.files["d/empty"] = nil
			wtCheck(t, img, m)
			if err := w.Remove("d/rest.bin"); err != nil {
				t.Fatal(err)
			}
			delete(m.files, "d/rest.bin")
			wtCheck(t, img, m)
		})
	}
}

func TestWriterRootFull(t *testing.T) {
	for _, sp := range wtSpecs[:2] {
		t.Run(sp.variant.String(), func(t *testing.T) {
			img := wtImage(t, sp, "-r", "32")
			w := wtOpen(t, img)
			m := newWtModel()
			mtime := time.Date(2021, 6, 7, 8, 9, 10, 0, time.UTC)
			roots := int(w.g.rootEntries)
			for i := range roots {
				p := fmt.Sprintf("F%d.TXT", i)
				if err := w.WriteFile(p, []byte(p), 0o644, mtime); err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				m.files[p] = []byte(p)
			}
			wtCheck(t, img, m)
			wtUnchanged(t, img, ErrDirFull, func() error { return w.WriteFile("LAST.TXT", nil, 0o644, mtime) })
			wtUnchanged(t, img, ErrDirFull, func() error { return w.Mkdir("dir") })
			for _, p := range []string{"F3.TXT", "F4.TXT"} {
				if err := w.Remove(p); err != nil {
					t.Fatal(err)
				}
				delete(m.files, p)
			}
			// Two free slots: a name needing three fails, one needing two fits.
			wtUnchanged(t, img, ErrDirFull, func() error {
				return w.WriteFile("a name of fourteen+.txt", nil, 0o644, mtime)
			})
			if err := w.WriteFile("Mixed.txt", []byte("m"), 0o644, mtime); err != nil {
				t.Fatal(err)
			}
			m.files["Mixed.txt"] = []byte("m")
			wtCheck(t, img, m)
		})
	}
}

func TestAlias(t *testing.T) {
	for _, c := range []struct {
		name  string
		taken []string
		want  string
	}{
		{"longfilename.txt", nil, "LONGFI~1.TXT"},
		{"longfilename.txt", []string{"LONGFI~1TXT"}, "LONGFI~2.TXT"},
		{"Config.txt", nil, "CONFIG.TXT"},
		{"Config.txt", []string{"CONFIG  TXT"}, "CONFIG~1.TXT"},
		{"a+b.txt", nil, "A_B~1.TXT"},
		{"my file.tar.gz", nil, "MYFILE~1.GZ"},
		{".bashrc", nil, "BASHRC~1"},
		{"mañana.txt", nil, "MAÑANA.TXT"},
		{"mañana+.txt", nil, "MAÑANA~1.TXT"},
		{"日本.txt", nil, "__~1.TXT"},
		{"abc.html", nil, "ABC~1.HTM"},
	} {
		taken := map[[11]byte]bool{}
		for _, s := range c.taken {
			var sn [11]byte
			copy(sn[:], s)
			taken[sn] = true
		}
		sn, err := makeAlias(c.name, func(s [11]byte) bool { return taken[s] }, 100)
		if err != nil {
			t.Fatal(err)
		}
		if got := shortName(sn, 0); got != c.want {
			t.Errorf("alias of %q = %q, want %q", c.name, got, c.want)
		}
	}
	for _, c := range []struct {
		name  string
		short string
		ntres uint8
		ok    bool
	}{
		{"config.txt", "CONFIG  TXT", 0x18, true},
		{"CONFIG.TXT", "CONFIG  TXT", 0, true},
		{"config.TXT", "CONFIG  TXT", 0x08, true},
		{"README", "README     ", 0, true},
		{"Config.txt", "", 0, false},
		{"a.b.c", "", 0, false},
		{"toolongname.txt", "", 0, false},
		{"a b.txt", "", 0, false},
		{".x", "", 0, false},
	} {
		sn, ntres, ok := plainShort(c.name)
		if ok != c.ok || ok && (string(sn[:]) != c.short || ntres != c.ntres) {
			t.Errorf("plainShort(%q) = %q %#x %v", c.name, sn, ntres, ok)
		}
	}
}

func TestLFNEntries(t *testing.T) {
	sn := [11]byte([]byte("LONGFI~1TXT"))
	name := "A long file name that spans pieces.txt"
	u, err := checkLongName(name)
	if err != nil {
		t.Fatal(err)
	}
	ents := lfnEntries(u, sn)
	var raw []byte
	for _, e := range ents {
		raw = append(raw, e...)
	}
	raw = append(raw, encodeShort(sn, AttrArchive, 0, 0, 0, time.Now(), time.Now())...)
	p := newDirParser(0)
	p.feed(raw, 0)
	if len(p.d.entries) != 1 || p.d.entries[0].name != name {
		t.Fatalf("parsed %+v", p.d.entries)
	}
}

func TestStamp(t *testing.T) {
	d, tm, tenth := fatStamp(time.Date(2024, 2, 29, 23, 59, 59, 990_000_000, time.UTC))
	if got := fatTime(d, tm, tenth); !got.Equal(time.Date(2024, 2, 29, 23, 59, 59, 990_000_000, time.UTC)) {
		t.Errorf("round trip: %v", got)
	}
	d, tm, _ = fatStamp(time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC))
	if got := fatTime(d, tm, 0); got.Year() != 1980 {
		t.Errorf("clamp: %v", got)
	}
}
