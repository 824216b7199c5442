package fat

import (
	"bytes"
	"errors"
	"io"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"imgtool/fs/meta"
	"imgtool/internal/testimg"
)

// srcFiles lists the regular files and folders of the source tree, as
// slash paths relative to it.
func srcTree(t *testing.T, src string) (files, dirs []string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			dirs = append(dirs, filepath.ToSlash(rel))
		} else {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, dirs
}

func TestReadBack(t *testing.T) {
	for _, v := range variants {
		t.Run(v.String(), func(t *testing.T) {
			fx := getFixture(t, v)
			fsys := openFixture(t, fx)
			if fsys.Variant() != v {
				t.Fatalf("Variant = %v, want %v", fsys.Variant(), v)
			}
			files, dirs := srcTree(t, fx.src)
			for _, rel := range files {
				want, err := os.ReadFile(filepath.Join(fx.src, rel))
				if err != nil {
					t.Fatal(err)
				}
				got, err := fsys.ReadFile(rel)
				if err != nil {
					t.Errorf("ReadFile(%q): %v", rel, err)
					continue
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: contents differ (%d bytes, want %d)", rel, len(got), len(want))
				}
				fi, err := fsys.Stat(rel)
				if err != nil {
					t.Fatal(err)
				}
				sfi, _ := os.Stat(filepath.Join(fx.src, rel))
				if fi.Name() != sfi.Name() || fi.Size() != sfi.Size() || fi.IsDir() {
					t.Errorf("Stat(%q) = %s %d, want %s %d", rel, fi.Name(), fi.Size(), sfi.Name(), sfi.Size())
				}
				// FAT keeps 2-second write times.
				if d := fi.ModTime().Sub(sfi.ModTime().Truncate(2 * time.Second)); d != 0 {
					t.Errorf("%s: mtime %v, want %v", rel, fi.ModTime(), sfi.ModTime().UTC())
				}
				st := fi.Sys().(*meta.Stat)
				wantMode := iofs.FileMode(0o644)
				if rel == "ro.txt" {
					wantMode = 0o444
				}
				if fi.Mode() != wantMode || st.Unix != 0o100000|uint32(wantMode) || st.Nlink != 1 {
					t.Errorf("%s: mode %v unix %o", rel, fi.Mode(), st.Unix)
				}
				if wantBlocks := (fi.Size() + fx.clusterSize - 1) / fx.clusterSize * fx.clusterSize / 512; st.Blocks != wantBlocks {
					t.Errorf("%s: Blocks %d, want %d", rel, st.Blocks, wantBlocks)
				}
			}
			for _, rel := range dirs {
				fi, err := fsys.Stat(rel)
				if err != nil || !fi.IsDir() || fi.Mode() != iofs.ModeDir|0o755 {
					t.Errorf("Stat(%q) = %v, %v", rel, fi, err)
				}
			}
			// Every inode number is distinct.
			inos := map[uint64]string{}
			iofs.WalkDir(fsys, ".", func(p string, d iofs.DirEntry, err error) error {
				if err != nil {
					t.Errorf("WalkDir %s: %v", p, err)
					return err
				}
				fi, _ := d.Info()
				ino := fi.Sys().(*meta.Stat).Ino
				if o, dup := inos[ino]; dup {
					t.Errorf("%s and %s share inode %d", o, p, ino)
				}
				inos[ino] = p
				return nil
			})
			if len(inos) != len(files)+len(dirs)+1 {
				t.Errorf("walk found %d names, source has %d", len(inos), len(files)+len(dirs)+1)
			}
		})
	}
}

// TestMdirListing compares the whole tree with mdir's recursive listing.
func TestMdirListing(t *testing.T) {
	testimg.NeedTools(t, "mdir")
	for _, v := range variants {
		t.Run(v.String(), func(t *testing.T) {
			fx := getFixture(t, v)
			fsys := openFixture(t, fx)
			out := testimg.RunEnv(t, utf8Env, "mdir", "-/", "-b", "-i", fx.img, "::/")
			var want []string
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				want = append(want, strings.TrimPrefix(line, "::/"))
			}
			var got []string
			iofs.WalkDir(fsys, ".", func(p string, d iofs.DirEntry, err error) error {
				if err != nil {
					t.Errorf("%s: %v", p, err)
					return err
				}
				if p == "." {
					return nil
				}
				if d.IsDir() {
					p += "/"
				}
				got = append(got, p)
				return nil
			})
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("listing differs from mdir:\n got %d: %.20q…\nwant %d: %.20q…", len(got), got, len(want), want)
			}
		})
	}
}

func TestFSTest(t *testing.T) {
	for _, v := range variants {
		t.Run(v.String(), func(t *testing.T) {
			fx := getFixture(t, v)
			// fstest reads every file a few bytes at a time: serve the
			// image from memory rather than with millions of preads.
			img, err := os.ReadFile(fx.img)
			if err != nil {
				t.Fatal(err)
			}
			fsys, err := New(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatal(err)
			}
			if err := fstest.TestFS(fsys, "readme.txt", "CONFIG.TXT", "ünïcødé-名前.txt", "a/b/c/d/e/f/g/h/i/j/deep.txt", "frag/frag.bin", "empty.txt"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCaseInsensitive(t *testing.T) {
	fx := getFixture(t, FAT16)
	fsys := openFixture(t, fx)
	for name, stored := range map[string]string{
		"CONFIG.TXT": "CONFIG.TXT", "config.txt": "CONFIG.TXT", "README.TXT": "readme.txt",
		"readme.txt": "readme.txt", "DIR1/readme.txt": "Readme.TXT", "dir2/Readme.txt": "README.txt",
		"mixedcase.txt": "MixedCase.Txt", "ÜNÏCØDÉ-名前.TXT": "ünïcødé-名前.txt",
	} {
		fi, err := fsys.Stat(name)
		if err != nil {
			t.Errorf("Stat(%q): %v", name, err)
			continue
		}
		if fi.Name() != stored {
			t.Errorf("Stat(%q).Name() = %q, want %q", name, fi.Name(), stored)
		}
	}
	// The two names that differ only in case are two files.
	a, _ := fsys.ReadFile("Dir1/Readme.TXT")
	b, _ := fsys.ReadFile("dir2/README.txt")
	if string(a) != "one\n" || string(b) != "two\n" {
		t.Errorf("got %q and %q", a, b)
	}
	for _, bad := range []string{"/readme.txt", "a/../readme.txt", "readme.txt/", ""} {
		if _, err := fsys.Open(bad); !errors.Is(err, iofs.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	for _, missing := range []string{"nope", "readme.txt/x", "a/b/nope/x"} {
		if _, err := fsys.Open(missing); !errors.Is(err, iofs.ErrNotExist) {
			t.Errorf("Open(%q) = %v, want ErrNotExist", missing, err)
		}
	}
	if _, err := fsys.ReadLink("readme.txt"); !errors.Is(err, iofs.ErrInvalid) {
		t.Errorf("ReadLink = %v, want ErrInvalid", err)
	}
	if _, err := fsys.ReadLink("nope"); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("ReadLink(missing) = %v, want ErrNotExist", err)
	}
	if fi, err := fsys.Lstat("CONFIG.TXT"); err != nil || fi.Size() != 12 {
		t.Errorf("Lstat = %v, %v", fi, err)
	}
}

// TestReadAtRandom reads random slices, concurrently, and compares them with
// the source.
func TestReadAtRandom(t *testing.T) {
	for _, v := range variants {
		t.Run(v.String(), func(t *testing.T) {
			fx := getFixture(t, v)
			fsys := openFixture(t, fx)
			for _, name := range []string{"frag/frag.bin", "big.bin", "few.bin"} {
				want, err := os.ReadFile(filepath.Join(fx.src, name))
				if err != nil {
					t.Fatal(err)
				}
				fl, err := fsys.Open(name)
				if err != nil {
					t.Fatal(err)
				}
				ra := fl.(io.ReaderAt)
				var wg sync.WaitGroup
				for g := range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						rng := rand.New(rand.NewPCG(uint64(g), uint64(len(want))))
						buf := make([]byte, 3*fx.clusterSize+7)
						for range 500 {
							off := rng.Int64N(int64(len(want)) + 10)
							n := rng.IntN(len(buf) + 1)
							got, err := ra.ReadAt(buf[:n], off)
							end := min(off+int64(n), int64(len(want)))
							exp := want[min(off, end):end]
							if got != len(exp) || !bytes.Equal(buf[:got], exp) {
								t.Errorf("%s: ReadAt(%d, %d) = %d, %v; want %d bytes", name, n, off, got, err, len(exp))
								return
							}
							if (got < n) != (err == io.EOF) {
								t.Errorf("%s: ReadAt(%d, %d) = %d, %v", name, n, off, got, err)
								return
							}
						}
					}()
				}
				wg.Wait()
				// Seek + Read give the same bytes.
				sk := fl.(io.ReadSeeker)
				if _, err := sk.Seek(int64(len(want))/3, io.SeekStart); err != nil {
					t.Fatal(err)
				}
				rest, err := io.ReadAll(sk)
				if err != nil || !bytes.Equal(rest, want[len(want)/3:]) {
					t.Errorf("%s: Seek+Read: %d bytes, %v", name, len(rest), err)
				}
				fl.Close()
				if _, err := ra.ReadAt(make([]byte, 1), 0); !errors.Is(err, iofs.ErrClosed) {
					t.Errorf("ReadAt after Close: %v", err)
				}
			}
		})
	}
}

var fsckClusters = regexp.MustCompile(`(\d+)/(\d+) clusters`)

// TestUsage compares Usage and Allocated with fsck.vfat's cluster count and
// with the cluster chains of every file.
func TestUsage(t *testing.T) {
	testimg.NeedTools(t, "fsck.vfat")
	for _, v := range variants {
		t.Run(v.String(), func(t *testing.T) {
			fx := getFixture(t, v)
			fsys := openFixture(t, fx)
			m := fsckClusters.FindStringSubmatch(testimg.Run(t, "fsck.vfat", "-n", "-v", fx.img))
			if m == nil {
				t.Fatal("no cluster count in fsck.vfat output")
			}
			used, _ := strconv.ParseInt(m[1], 10, 64)
			total, _ := strconv.ParseInt(m[2], 10, 64)
			if total != int64(fsys.g.clusters) {
				t.Errorf("clusters %d, fsck says %d", fsys.g.clusters, total)
			}
			u, err := fsys.Usage()
			if err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(fx.img)
			if u.Total != st.Size() {
				t.Errorf("Total %d, image is %d bytes", u.Total, st.Size())
			}
			if u.Free != (total-used)*fx.clusterSize {
				t.Errorf("Free %d, fsck says %d free clusters of %d bytes", u.Free, total-used, fx.clusterSize)
			}
			if u.Used != fsys.g.dataOff+used*fx.clusterSize {
				t.Errorf("Used %d, want %d", u.Used, fsys.g.dataOff+used*fx.clusterSize)
			}
			ranges, err := fsys.Allocated()
			if err != nil {
				t.Fatal(err)
			}
			var sum int64
			for i, r := range ranges {
				sum += r.Len
				if r.Len <= 0 || i > 0 && ranges[i-1].Off+ranges[i-1].Len >= r.Off {
					t.Fatalf("ranges not sorted and merged at %d: %v", i, ranges[max(i-1, 0):i+1])
				}
			}
			if sum != u.Used {
				t.Errorf("Allocated covers %d bytes, Usage.Used is %d", sum, u.Used)
			}
			covered := func(off, n int64) bool {
				i, _ := slices.BinarySearchFunc(ranges, off, func(r meta.Range, o int64) int {
					if r.Off+r.Len <= o {
						return -1
					}
					if r.Off > o {
						return 1
					}
					return 0
				})
				return i < len(ranges) && ranges[i].Off <= off && off+n <= ranges[i].Off+ranges[i].Len
			}
			iofs.WalkDir(fsys, ".", func(p string, d iofs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				fl, err := fsys.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range fl.(*File).runs {
					if !covered(r.diskOff, r.length) {
						t.Errorf("%s: bytes %d+%d not in Allocated", p, r.diskOff, r.length)
					}
				}
				fl.Close()
				return nil
			})
		})
	}
}

// TestFragmented checks the run list of the fragmented file against
// mshowfat's cluster list.
func TestFragmented(t *testing.T) {
	testimg.NeedTools(t, "mshowfat")
	for _, v := range variants {
		t.Run(v.String(), func(t *testing.T) {
			fx := getFixture(t, v)
			fsys := openFixture(t, fx)
			for _, name := range []string{"frag/frag.bin", "few.bin"} {
				out := testimg.RunEnv(t, utf8Env, "mshowfat", "-i", fx.img, "::/"+name)
				var want []string
				for _, m := range regexp.MustCompile(`<(\d+)(?:-(\d+))?>`).FindAllStringSubmatch(out, -1) {
					if m[2] == "" {
						m[2] = m[1]
					}
					want = append(want, m[1]+"-"+m[2])
				}
				fl, err := fsys.Open(name)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, r := range fl.(*File).runs {
					first := (r.diskOff-fsys.g.dataOff)/fx.clusterSize + 2
					last := first + (r.length+fx.clusterSize-1)/fx.clusterSize - 1
					got = append(got, strconv.FormatInt(first, 10)+"-"+strconv.FormatInt(last, 10))
				}
				fl.Close()
				if !slices.Equal(got, want) {
					t.Errorf("%s: runs %v, mshowfat %v", name, got, want)
				}
				if name == "frag/frag.bin" && len(got) < 3 {
					t.Errorf("%s is not fragmented (%v): the fixture does not test what it should", name, got)
				}
			}
		})
	}
}

// TestIdentify compares Identify and the label and UUID with blkid.
func TestIdentify(t *testing.T) {
	testimg.NeedTools(t, "blkid")
	for _, v := range variants {
		t.Run(v.String(), func(t *testing.T) {
			fx := getFixture(t, v)
			fsys := openFixture(t, fx)
			f, err := os.Open(fx.img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			info, err := Identify(f, st.Size())
			if err != nil {
				t.Fatal(err)
			}
			b := blkid(t, fx.img)
			if info.Type != b["TYPE"] || info.Variant != b["VERSION"] || info.Label != b["LABEL"] || info.UUID != b["UUID"] {
				t.Errorf("Identify = %+v, blkid %v", info, b)
			}
			if fsys.Label() != b["LABEL"] || fsys.UUID() != b["UUID"] || b["UUID"] != fx.serial {
				t.Errorf("Label %q UUID %q, blkid %v, want serial %s", fsys.Label(), fsys.UUID(), b, fx.serial)
			}
			u, _ := fsys.Usage()
			if info.Size != u.Total || info.BlockSize != fx.clusterSize || info.Blocks != int64(fsys.g.clusters) {
				t.Errorf("Identify sizes %+v, usage %+v", info, u)
			}
			if v == FAT32 {
				// mtools keeps the FSInfo free count up to date.
				if info.Free != u.Free || info.FreeBlocks*fx.clusterSize != u.Free || info.Used != u.Total-u.Free {
					t.Errorf("FSInfo free %d blocks, usage %+v", info.FreeBlocks, u)
				}
			} else if info.FreeBlocks != -1 || info.Free != -1 || info.Used != -1 {
				t.Errorf("%v has no FSInfo, Identify says %+v", v, info)
			}
		})
	}
}

func blkid(t *testing.T, img string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(testimg.RunEnv(t, []string{"LC_ALL=C.UTF-8"}, "blkid", "-p", "-o", "export", img), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

func TestNotFAT(t *testing.T) {
	for _, size := range []int64{0, 100, 512, 1 << 20} {
		r := bytes.NewReader(make([]byte, size))
		if _, err := Identify(r, size); !errors.Is(err, meta.ErrWrongType) || !errors.Is(err, ErrNotFAT) {
			t.Errorf("Identify(zeros %d) = %v", size, err)
		}
		if _, err := New(r, size); !errors.Is(err, meta.ErrWrongType) {
			t.Errorf("New(zeros %d) = %v", size, err)
		}
	}
}

func TestVariantString(t *testing.T) {
	for v, s := range map[Variant]string{FAT12: "FAT12", FAT16: "FAT16", FAT32: "FAT32", 7: "Variant(7)"} {
		if v.String() != s {
			t.Errorf("%d.String() = %q", v, v.String())
		}
	}
}
