package fat

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"imgtool/internal/testimg"
)

// fixture is a FAT image built with mkfs.vfat and mtools from a source
// tree that the test wrote; the source tree is the oracle.
type fixture struct {
	variant     Variant
	img         string
	src         string
	clusterSize int64
	label       string
	serial      string // as blkid prints it
	manyFiles   int
}

var (
	fixtureDir  string
	fixtureMu   sync.Mutex
	fixtureOnce = map[Variant]*fixture{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fat-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtureDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// utf8Env makes mtools read and write file names as UTF-8.
var utf8Env = []string{"LC_ALL=C.UTF-8", "TZ=UTC"}

// fixtureParams: image size, sectors per cluster, big-file size, files in
// the large directory.
var fixtureParams = map[Variant]struct {
	size, spc, big int64
	many           int
}{
	FAT12: {16 << 20, 16, 4 << 20, 150},
	FAT16: {64 << 20, 4, 20 << 20, 1000},
	FAT32: {100 << 20, 1, 20 << 20, 1000},
}

// getFixture builds (once per test binary) the image of a variant.
func getFixture(t testing.TB, v Variant) *fixture {
	t.Helper()
	testimg.NeedTools(t, "mkfs.vfat", "mcopy", "mdel", "mattrib")
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if fx := fixtureOnce[v]; fx != nil {
		return fx
	}
	p := fixtureParams[v]
	dir := filepath.Join(fixtureDir, v.String())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fx := &fixture{
		variant:     v,
		img:         filepath.Join(dir, "fs.img"),
		src:         filepath.Join(dir, "src"),
		clusterSize: 512 * p.spc,
		label:       "LBL" + v.String(),
		serial:      fmt.Sprintf("%04X-%04X", 0x1234, 0xAB00+int(v)),
		manyFiles:   p.many,
	}
	testimg.Sparse(t, fx.img, p.size)
	testimg.Run(t, "mkfs.vfat", "-F", fmt.Sprint(int(v)), "-s", fmt.Sprint(p.spc), "-n", fx.label,
		"-i", fmt.Sprintf("1234ab%02x", int(v)), fx.img)

	rng := rand.New(rand.NewPCG(uint64(v), 42))
	stamp := time.Date(2011, 3, 4, 5, 6, 8, 0, time.UTC)
	write := func(rel string, data []byte) {
		p := filepath.Join(fx.src, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		stamp = stamp.Add(97*time.Minute + 14*time.Second)
		if err := os.Chtimes(p, stamp, stamp); err != nil {
			t.Fatal(err)
		}
	}
	random := func(n int64) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	cs := fx.clusterSize

	// A fragmented file: fill a folder with two-cluster files, delete every
	// other one, then copy a large file into the holes.
	for i := range 20 {
		write(fmt.Sprintf("frag/f%02d", i), random(2*cs))
	}
	testimg.RunEnv(t, utf8Env, "mcopy", "-s", "-p", "-m", "-i", fx.img, filepath.Join(fx.src, "frag"), "::/frag")
	for i := 0; i < 20; i += 2 {
		testimg.RunEnv(t, utf8Env, "mdel", "-i", fx.img, fmt.Sprintf("::/frag/f%02d", i))
		os.Remove(filepath.Join(fx.src, "frag", fmt.Sprintf("f%02d", i)))
	}
	if v == FAT32 {
		// mtools allocates after the FSInfo next-free hint: point it at the
		// start so that the holes are reused.
		patch(t, fx.img, 512+492, []byte{2, 0, 0, 0})
	}
	write("frag/frag.bin", random(25*cs+123))
	testimg.RunEnv(t, utf8Env, "mcopy", "-p", "-m", "-i", fx.img, filepath.Join(fx.src, "frag", "frag.bin"), "::/frag/frag.bin")

	// Everything else, copied in one go.
	rest := filepath.Join(dir, "rest")
	fxsrc := fx.src
	fx.src = rest
	write("readme.txt", []byte("read me\n"))
	write("CONFIG.TXT", []byte("arm_64bit=1\n"))
	write("Long File Name with spaces, and more than 13 characters.text", []byte("long\n"))
	write("ünïcødé-名前.txt", []byte("unicode\n"))
	write("MixedCase.Txt", []byte("mixed\n"))
	write("empty.txt", nil)
	write("one.bin", []byte{0xA5})
	write("cluster.bin", random(cs))
	write("few.bin", random(3*cs+1))
	write("big.bin", random(p.big))
	write("ro.txt", []byte("read only\n"))
	write("Dir1/Readme.TXT", []byte("one\n"))
	write("dir2/README.txt", []byte("two\n"))
	write("a/b/c/d/e/f/g/h/i/j/deep.txt", []byte("deep\n"))
	write("a/b/c/sibling.txt", random(cs+5))
	for i := range p.many {
		write(fmt.Sprintf("many/%04d-long-file-name.dat", i), []byte(fmt.Sprintf("file %d\n", i)))
	}
	entries, err := os.ReadDir(rest)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-s", "-p", "-m", "-i", fx.img}
	for _, e := range entries {
		args = append(args, filepath.Join(rest, e.Name()))
	}
	args = append(args, "::/")
	testimg.RunEnv(t, utf8Env, "mcopy", args...)
	testimg.RunEnv(t, utf8Env, "mattrib", "+r", "-i", fx.img, "::/ro.txt")
	// Merge the two source folders into one oracle tree.
	for _, e := range entries {
		if err := os.Rename(filepath.Join(rest, e.Name()), filepath.Join(fxsrc, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	fx.src = fxsrc
	fixtureOnce[v] = fx
	return fx
}

func openFixture(t testing.TB, fx *fixture) *FS {
	t.Helper()
	f, err := os.Open(fx.img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := New(f, st.Size())
	if err != nil {
		t.Fatalf("New(%s): %v", fx.img, err)
	}
	return fsys
}

var variants = []Variant{FAT12, FAT16, FAT32}

// patch writes b at offset off of the file.
func patch(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
