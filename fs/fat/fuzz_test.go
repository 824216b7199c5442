package fat

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"imgtool/internal/testimg"
)

// fuzzSeeds returns the committed seeds (testdata/*.img.gz) and, when the
// tools are installed, a 256 KiB FAT12 and a FAT16 image (cut to its first
// 128 KiB) made with mkfs.vfat and mcopy. Seeds stay small: the fuzzing
// engine mutates and minimizes whole inputs.
func fuzzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.img.gz"))
	for _, p := range paths {
		fh, err := os.Open(p)
		if err != nil {
			f.Fatal(err)
		}
		zr, err := gzip.NewReader(fh)
		if err != nil {
			f.Fatalf("%s: %v", p, err)
		}
		b, err := io.ReadAll(io.LimitReader(zr, 4<<20))
		fh.Close()
		if err != nil {
			f.Fatalf("%s: %v", p, err)
		}
		seeds = append(seeds, b)
	}
	if len(seeds) == 0 {
		f.Fatal("no seeds in testdata")
	}
	for _, tool := range []string{"mkfs.vfat", "mcopy"} {
		if _, err := testimg.LookPath(tool); err != nil {
			return seeds
		}
	}
	dir := f.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "Deep", "er"), 0o755)
	os.WriteFile(filepath.Join(src, "config.txt"), []byte("a=b\n"), 0o644)
	os.WriteFile(filepath.Join(src, "Deep", "er", "Some long name.bin"), bytes.Repeat([]byte{1, 2, 3}, 2000), 0o644)
	os.WriteFile(filepath.Join(src, "Deep", "ünï.txt"), []byte("u\n"), 0o644)
	for _, c := range []struct {
		variant, size, keep string
	}{{"12", "256K", ""}, {"16", "2200K", "128K"}} {
		img := filepath.Join(dir, "fat"+c.variant+".img")
		testimg.Run(f, "truncate", "-s", c.size, img)
		testimg.Run(f, "mkfs.vfat", "-F", c.variant, "-s", "1", "-n", "FUZZ", img)
		testimg.RunEnv(f, utf8Env, "mcopy", "-s", "-i", img, filepath.Join(src, "config.txt"), filepath.Join(src, "Deep"), "::/")
		if c.keep != "" {
			testimg.Run(f, "truncate", "-s", c.keep, img)
		}
		b, err := os.ReadFile(img)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzNew opens arbitrary bytes as a FAT filesystem and, when that works,
// walks it and reads every file.
func FuzzNew(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		Identify(r, int64(len(data)))
		fsys, err := New(r, int64(len(data)))
		if err != nil {
			return
		}
		walkAll(fsys)
		fsys.Label()
		fsys.UUID()
		if u, err := fsys.Usage(); err == nil && (u.Used < 0 || u.Free < 0 || u.Used+u.Free > u.Total) {
			t.Errorf("usage %+v", u)
		}
		if rs, err := fsys.Allocated(); err == nil {
			for i := 1; i < len(rs); i++ {
				if rs[i-1].Off+rs[i-1].Len >= rs[i].Off {
					t.Fatalf("ranges overlap: %v %v", rs[i-1], rs[i])
				}
			}
		}
	})
}

// FuzzDirEntries parses arbitrary bytes as directory entries and checks
// that every listed name can be a path element and be looked up.
func FuzzDirEntries(f *testing.F) {
	f.Add(cat(
		short(".          ", AttrDirectory, 0, 7, 0),
		short("..         ", AttrDirectory, 0, 0, 0),
		long("A long name.txt", "ALONGN~1TXT"), short("ALONGN~1TXT", AttrArchive, 0, 10, 100),
		short("README  TXT", 0, ntLowerBase|ntLowerExt, 12, 2),
		long("smile-🙂.txt", "SMILE-~1TXT"), short("SMILE-~1TXT", 0, 0, 11, 1),
	))
	f.Add(cat(long("Orphan piece name.txt", "ORPHAN~1TXT")[32:], short("\x05RPHAN~1TXT", 0, 0, 16, 5)))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := newDirParser(3)
		p.feed(data, 0)
		if len(p.d.entries) > len(data)/dirEntrySize {
			t.Fatalf("%d entries from %d bytes", len(p.d.entries), len(data))
		}
		for _, n := range p.d.entries {
			if !validName(n.name) {
				t.Fatalf("invalid name %q", n.name)
			}
			if p.d.lookup(n.name) == nil {
				t.Fatalf("lookup(%q) fails", n.name)
			}
			if n.off%dirEntrySize != 0 || n.off >= int64(len(data)) {
				t.Fatalf("entry offset %d", n.off)
			}
		}
	})
}
