package ext4

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/internal/testimg"
)

// liveBackup loop-mounts a fresh filesystem with a long commit interval,
// writes files (and, with orphan, unlinks one it keeps open), syncs the
// filesystem and copies the image file while it is still mounted: the
// copy is what a dd of a running system looks like. It returns the copy
// and the files written (path → content).
func liveBackup(t *testing.T, orphan bool, mkfs ...string) ([]byte, map[string][]byte) {
	t.Helper()
	testimg.NeedRoot(t)
	testimg.NeedTools(t, "mkfs.ext4", "mount", "umount", "sync", "e2fsck", "debugfs")
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	testimg.Sparse(t, img, 128<<20)
	testimg.Run(t, "mkfs.ext4", append(append([]string{"-q", "-F"}, mkfs...), img)...)
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	testimg.Run(t, "mount", "-o", "loop,commit=600", img, mnt)
	mounted := true
	unmount := func() {
		if mounted {
			mounted = false
			testimg.Run(t, "umount", mnt)
		}
	}
	t.Cleanup(unmount)
	rng := rand.New(rand.NewPCG(1, 2))
	files := map[string][]byte{}
	put := func(name string, n int) {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		p := filepath.Join(mnt, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	put("big1", 3<<20)
	for i := range 150 {
		put(fmt.Sprintf("dir/sub%d/f%d", i%7, i), 100+i*37)
	}
	testimg.Run(t, "sync", "-f", mnt)
	var held *os.File
	if orphan {
		var err error
		held, err = os.Create(filepath.Join(mnt, "held"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := held.Write(bytes.Repeat([]byte("orphan data "), 100000)); err != nil {
			t.Fatal(err)
		}
		if err := held.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(mnt, "held")); err != nil {
			t.Fatal(err)
		}
	}
	put("big2", 2<<20)
	if err := os.Remove(filepath.Join(mnt, "dir/sub0/f0")); err != nil {
		t.Fatal(err)
	}
	delete(files, "dir/sub0/f0")
	testimg.Run(t, "sync", "-f", mnt)
	copyImg, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if held != nil {
		held.Close()
	}
	unmount()
	return copyImg, files
}

func sum(b []byte) [32]byte { return sha256.Sum256(b) }

// checkFiles reads every file back through the reader.
func checkFiles(t *testing.T, img []byte, files map[string][]byte) {
	t.Helper()
	f, err := New(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for name, want := range files {
		fl, err := f.Open(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got, err := io.ReadAll(fl.(io.Reader))
		fl.Close()
		if err != nil || sum(got) != sum(want) {
			t.Errorf("%s: content differs (%d bytes, %v)", name, len(got), err)
		}
	}
}

func TestReplayLiveBackup(t *testing.T) {
	for _, c := range []struct {
		name string
		mkfs []string
	}{
		{"ext4_4k", []string{"-b", "4096"}},
		{"ext4_1k_no_csum", []string{"-b", "1024", "-O", "^metadata_csum"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, files := liveBackup(t, true, c.mkfs...)
			size := int64(len(img))
			if need, err := NeedsRecovery(bytes.NewReader(img), size); err != nil || !need {
				t.Fatalf("NeedsRecovery on a live copy = %v, %v; want true", need, err)
			}
			want := oracleReplay(t, img)
			ours := bytes.Clone(img)
			st, err := Replay(&memRW{ours}, size)
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			t.Logf("replay: %+v", st)
			if st.Replayed == 0 {
				t.Errorf("the live copy's journal replayed nothing")
			}
			if d := diffBlocks(t, ours, want); len(d) > 0 {
				t.Errorf("%d blocks differ from debugfs journal_run, first %v", len(d), d[:min(len(d), 10)])
			}
			compareSuper(t, ours, want)
			sb, _, _ := repairReadSuper(bytes.NewReader(ours))
			if sb.LastOrphan == 0 {
				t.Fatalf("the live copy has no orphan after replay")
			}
			n, err := ReleaseOrphans(&memRW{ours}, size)
			if err != nil || n != 1 {
				t.Fatalf("ReleaseOrphans = %d, %v; want 1", n, err)
			}
			fsckClean(t, writeTemp(t, t.TempDir(), "ours.img", ours))
			checkFiles(t, ours, files)
			rep, err := Check(bytes.NewReader(ours), size)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			for _, w := range rep.Warnings {
				if w.Kind != CheckFreeCount {
					t.Errorf("unexpected warning: %s", w.Msg)
				}
			}
		})
	}
}

func TestReleaseOrphansDebugfs(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "debugfs", "e2fsck")
	for _, c := range []struct {
		name string
		mkfs []string
	}{
		{"ext4", []string{"-b", "4096"}},
		{"ext4_1k_32bit", []string{"-b", "1024", "-O", "^64bit"}},
		{"ext3", []string{"-t", "ext3"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			os.MkdirAll(filepath.Join(src, "d"), 0o755)
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: indirect blocks on ext3
			for _, n := range []string{"a", "b", "c", "keep"} {
				os.WriteFile(filepath.Join(src, n), big, 0o644)
			}
			os.WriteFile(filepath.Join(src, "d", "x"), []byte("x"), 0o644)
			img := filepath.Join(dir, "fs.img")
			testimg.Sparse(t, img, 64<<20)
			testimg.Run(t, "mkfs.ext4", append(append([]string{"-q", "-F"}, c.mkfs...), "-d", src, img)...)
			ino := func(p string) int {
				out := testimg.Run(t, "debugfs", "-R", "stat "+p, img)
				var n int
				if _, err := fmt.Sscanf(out[strings.Index(out, "Inode:"):], "Inode: %d", &n); err != nil {
					t.Fatalf("stat %s: %v", p, err)
				}
				return n
			}
			a, b, cc := ino("/a"), ino("/b"), ino("/c")
			// a and b: unlinked, links 0, chained; c: a truncate in progress
			// (links 1, i_size cut to 5000 bytes, blocks still mapped).
			script := fmt.Sprintf("unlink /a\nsif <%d> links_count 0\nsif <%d> dtime %d\n"+
				"unlink /b\nsif <%d> links_count 0\nsif <%d> dtime %d\n"+
				"sif <%d> size 5000\nsif <%d> dtime 0\nssv last_orphan %d\n",
				a, a, b, b, b, cc, cc, cc, a)
			testimg.RunIn(t, []byte(script), "debugfs", "-w", "-f", "-", img)
			data, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			size := int64(len(data))
			if c.name == "ext3" {
				// Truncating through indirect blocks is refused, and
				// nothing is written.
				before := bytes.Clone(data)
				if _, err := ReleaseOrphans(&memRW{data}, size); err == nil || !strings.Contains(err.Error(), fmt.Sprint(cc)) {
					t.Fatalf("ReleaseOrphans with an indirect truncate: %v; want an error naming inode %d", err, cc)
				}
				if !bytes.Equal(before, data) {
					t.Fatalf("a refused ReleaseOrphans changed the image")
				}
				// Without the truncate in the chain it works.
				testimg.RunIn(t, []byte(fmt.Sprintf("sif <%d> size %d\nsif <%d> dtime 0\n", cc, len(big), b)), "debugfs", "-w", "-f", "-", img)
				if data, err = os.ReadFile(img); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Check(bytes.NewReader(data), size); err != nil {
				t.Logf("before: %v", err)
			}
			n, err := ReleaseOrphans(&memRW{data}, size)
			if err != nil {
				t.Fatalf("ReleaseOrphans: %v", err)
			}
			if n != 2 {
				t.Errorf("released %d inodes, want 2", n)
			}
			out := writeTemp(t, dir, "ours.img", data)
			fsckClean(t, out)
			if rep, err := Check(bytes.NewReader(data), size); err != nil || len(rep.Warnings) > 0 {
				t.Errorf("Check after ReleaseOrphans: %v %v", err, rep.Warnings)
			}
			if n, err := ReleaseOrphans(&memRW{data}, size); n != 0 || err != nil {
				t.Errorf("second ReleaseOrphans = %d, %v", n, err)
			}
		})
	}
}
