package ext4

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"imgtool/internal/testimg"
)

// fuzzSeeds returns the committed tiny images and, when mkfs.ext4 is
// installed, a few more generated now.
func fuzzSeeds(f testing.TB) [][]byte {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.img.gz"))
	var out [][]byte
	for _, p := range paths {
		fh, err := os.Open(p)
		if err != nil {
			f.Fatal(err)
		}
		zr, err := gzip.NewReader(fh)
		if err != nil {
			f.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		fh.Close()
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	if mk, err := testimg.LookPath("mkfs.ext4"); err == nil {
		dir := f.TempDir()
		src := filepath.Join(dir, "src")
		os.MkdirAll(filepath.Join(src, "sub"), 0o755)
		os.WriteFile(filepath.Join(src, "sub", "f"), bytes.Repeat([]byte("abc"), 700), 0o644)
		os.Symlink("sub/f", filepath.Join(src, "l"))
		for i, args := range [][]string{
			{"-b", "1024", "-N", "16", "-O", "^has_journal,^resize_inode"},
			{"-b", "1024", "-N", "16", "-O", "^has_journal,^resize_inode,^metadata_csum,^64bit"},
			{"-t", "ext3", "-b", "1024", "-N", "16", "-O", "^resize_inode", "-J", "size=1"},
		} {
			img := filepath.Join(dir, "seed.img")
			os.Remove(img)
			if err := os.WriteFile(img, make([]byte, 0), 0o644); err != nil {
				f.Fatal(err)
			}
			size := int64(64 << 10)
			if i == 2 {
				size = 2 << 20
			}
			os.Truncate(img, size)
			cmd := exec.Command(mk, append(append([]string{"-q", "-F"}, args...), "-d", src, img)...)
			if cmd.Run() == nil {
				if b, err := os.ReadFile(img); err == nil {
					out = append(out, b)
				}
			}
		}
	}
	if len(out) == 0 {
		f.Fatal("no fuzz seeds")
	}
	return out
}

func FuzzNew(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4<<20 {
			return
		}
		exercise(data, 4*int64(len(data))+1<<20)
		exercise(data, 4*int64(len(data))+1<<20, WithoutVerify())
	})
}

func FuzzSuperblock(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s[SuperblockOffset : SuperblockOffset+SuperblockSize])
	}
	f.Fuzz(func(t *testing.T, sb []byte) {
		img := make([]byte, 64<<10)
		copy(img[SuperblockOffset:], sb)
		r := bytes.NewReader(img)
		if info, err := Identify(r, int64(len(img))); err == nil {
			if info.Size < 0 || info.BlockSize < 1024 || info.BlockSize > 65536 {
				t.Fatalf("bad info %+v", info)
			}
		}
		New(r, int64(len(img)))
		New(r, int64(len(img)), WithoutVerify())
	})
}

// stubFS is a minimal filesystem for fuzzing single structures: 1 KiB
// blocks over data, metadata_csum off.
func stubFS(data []byte, bs int64) *FS {
	f := &FS{r: bytes.NewReader(data), size: int64(len(data)), dirCache: map[string][]uint32{}, dirMaps: map[uint32]map[string]uint32{}}
	f.blockSize = bs
	f.blocks = uint64(max(1, int64(len(data))/bs))
	f.inodes = 1 << 20
	f.inodeSize = 256
	f.sb.FeatureIncompat = IncompatFiletype | IncompatExtents
	return f
}

func FuzzDirBlock(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		for off := 0; off+1024 <= len(s); off += 1024 {
			if binary.LittleEndian.Uint16(s[off+4:]) == 12 && s[off+8] == '.' {
				f.Add(s[off:off+1024], true)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, csum bool) {
		fs := stubFS(b, 1024)
		fs.metaCsum, fs.verify = csum, csum
		in := &inode{ino: 2, raw: make([]byte, 256)}
		fs.verifyDirBlock(in, b, 0, "fuzz")
		fs.parseDirBlock(b, 0, "fuzz", func(name []byte, ino uint32, ft uint8) bool {
			if !validName(name) || ino == 0 || ino > fs.inodes {
				t.Fatalf("bad entry %q %d", name, ino)
			}
			return true
		})
	})
}

func FuzzExtentTree(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		// i_block of the inodes of the seed images, plus the image.
		fsys, err := New(bytes.NewReader(s), int64(len(s)), WithoutVerify())
		if err != nil {
			continue
		}
		for ino := uint32(1); ino <= min(fsys.inodes, 16); ino++ {
			if in, err := fsys.readInode(ino); err == nil {
				f.Add(in.raw[0x28:0x28+60], s[:min(len(s), 16<<10)])
			}
		}
	}
	f.Fuzz(func(t *testing.T, iblock, blocks []byte) {
		if len(iblock) < 60 {
			return
		}
		fs := stubFS(blocks, 1024)
		in := &inode{ino: 12, raw: make([]byte, 256)}
		copy(in.raw[0x28:], iblock[:60])
		in.Inode = decodeInode(in.raw)
		in.Flags = InodeExtentsFl
		in.SizeLo = 1 << 30
		for _, ext := range []bool{true, false} {
			if !ext {
				in.Flags = 0
			}
			c, err := fs.content(in)
			if err != nil {
				continue
			}
			buf := make([]byte, 4096)
			for _, off := range []int64{0, 1023, 4096, 12 << 10, 300 << 10, 70 << 20, 1<<30 - 100} {
				c.ReadAt(buf, off)
			}
		}
	})
}

func FuzzXattrs(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		for off := 0; off+1024 <= len(s); off += 1024 {
			if binary.LittleEndian.Uint32(s[off:]) == XattrMagic {
				f.Add(s[off : off+1024])
			}
		}
	}
	blk := make([]byte, 1024)
	binary.LittleEndian.PutUint32(blk, XattrMagic)
	binary.LittleEndian.PutUint32(blk[8:], 1)
	e := blk[32:]
	e[0], e[1] = 3, 1
	binary.LittleEndian.PutUint16(e[2:], 1000)
	binary.LittleEndian.PutUint32(e[8:], 4)
	copy(e[16:], "abc")
	copy(blk[1000:], "val!")
	f.Add(blk)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 64 {
			return
		}
		fs := stubFS(b, 1024)
		fs.sb.FeatureIncompat |= IncompatEAInode
		fs.parseXattrBlock(b, 0, "fuzz", nil)
		// The same bytes as an in-inode area.
		in := &inode{ino: 3, raw: make([]byte, 256)}
		copy(in.raw[GoodOldInodeSize:], b)
		binary.LittleEndian.PutUint16(in.raw[0x80:], 32)
		in.extra = 32
		fs.inodeXattrs(in)
	})
}

// TestMutatedImages runs the FuzzNew body on deterministic mutations of the
// seeds (random bytes, all-ones fields, bit flips), so that robustness is
// checked on every test run and not only while fuzzing.
func TestMutatedImages(t *testing.T) {
	seeds := fuzzSeeds(t)
	r := rand.New(rand.NewPCG(9, 9))
	for it := range 4000 {
		d := append([]byte(nil), seeds[it%len(seeds)]...)
		for range 1 + r.IntN(20) {
			pos := r.IntN(len(d) - 8)
			if r.IntN(3) == 0 {
				pos = r.IntN(12 << 10)
			}
			switch r.IntN(4) {
			case 0:
				d[pos] = byte(r.Uint32())
			case 1:
				d[pos], d[pos+1], d[pos+2], d[pos+3] = 0xff, 0xff, 0xff, 0x7f
			case 2:
				d[pos], d[pos+1] = 0xff, 0xff
			case 3:
				d[pos+r.IntN(4)] ^= 1 << r.IntN(8)
			}
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			exercise(d, 4*int64(len(d))+1<<20)
			exercise(d, 4*int64(len(d))+1<<20, WithoutVerify())
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("mutation %d still running after 10 s", it)
		}
	}
}
