package main

import (
	"context"
	"fmt"
	iofs "io/fs"
	"strings"

	"github.com/spf13/cobra"
)

func newChmodCmd(g *globalOptions) *cobra.Command {
	return newAttrCmd(g, &cobra.Command{
		Use:   "chmod IMAGE MODE [PART:]PATH",
		Short: "Change the permissions of files in an image",
		Long: `Change the permission bits of a file or directory (with -R, of a whole tree) in a FAT
or ext2/3/4 partition of a raw image, in place, through an undo log.

MODE is octal (644, 0755, 4755) or symbolic as in chmod(1): comma-separated clauses
[ugoa...][+-=][rwxXst...] or [ugoa...][+-=][ugo], e.g. u+x, go-w, a=rX, u=rw,go=r.
A clause without u, g, o or a applies to all (no umask is involved). As with chmod(1),
a directory keeps its setuid and setgid bits under an octal mode of four digits or
fewer, and under "=", unless the mode names them. Put -- before a mode that starts
with "-" (imgtool chmod IMAGE -- -w PATH).

On ext2/3/4 the change time is updated. Symbolic links have no permissions of their
own: a link given as PATH is refused, and links met by -R are left alone.

FAT stores no permissions: only the owner write bit is kept, as the read-only
attribute of a file (set when the new mode lacks u+w, cleared otherwise); FAT
directories are left alone.`,
		Example: `  imgtool chmod raspios.img 600 rootfs:/home/pi/.ssh/authorized_keys
  imgtool chmod raspios.img u+x rootfs:/usr/local/bin/firstboot.sh
  imgtool chmod -R raspios.img go-w,a+rX rootfs:/opt/app
  imgtool chmod raspios.img a-w bootfs:/config.txt`,
	}, runChmod)
}

func runChmod(_ context.Context, opts attrOptions, args []string, g *globalOptions) error {
	spec, err := parseChmodMode(args[1])
	if err != nil {
		return err
	}
	sum := attrSummary{Action: "chmod", Mode: args[1]}
	return runAttr(g, opts, args, sum, func(_ *editSession, f *editFS) (attrChange, error) {
		return func(it attrItem, top bool) (bool, error) {
			if top && it.typ&iofs.ModeSymlink != 0 {
				return false, fmt.Errorf("%s is a symbolic link, which has no permissions of its own; give the path of its target; nothing was changed", args[2])
			}
			if it.typ&iofs.ModeSymlink != 0 || f.fat != nil && it.typ.IsDir() {
				return true, nil
			}
			m := bitsFileMode(spec.apply(it.perm, it.typ.IsDir()))
			if f.fat != nil {
				return false, editError(it.path, f.fat.Chmod(it.path, m))
			}
			return false, editError(it.path, f.ext4.Chmod(it.path, m))
		}, nil
	})
}

// modeSpec is a parsed chmod mode: an octal number or symbolic clauses.
type modeSpec struct {
	octal   uint32
	digits  int // number of octal digits given; 0 for a symbolic mode
	clauses []modeClause
}

// modeClause is one comma-separated part of a symbolic mode: who it
// affects and the operations in order.
type modeClause struct {
	who uint32 // mask of the bits the clause may change
	ops []modeOp
}

// modeOp is one +, - or = with its permissions: letters (bits, plus X),
// or a copy of the u, g or o bits.
type modeOp struct {
	op   byte
	bits uint32
	X    bool
	copy byte
	s    bool // names setuid/setgid
}

// whoBits and permBits are the mode bits that the letters of a symbolic
// mode stand for; X and s also set flags of their modeOp.
var (
	whoBits  = map[byte]uint32{'u': 0o4700, 'g': 0o2070, 'o': 0o1007, 'a': 0o7777}
	permBits = map[byte]uint32{'r': 0o444, 'w': 0o222, 'x': 0o111, 's': 0o6000, 't': 0o1000}
)

// parseChmodMode parses an octal or symbolic mode as chmod(1) takes it.
func parseChmodMode(s string) (*modeSpec, error) {
	bad := func(why string) error {
		return usagef("mode %q: %s; give octal bits (644) or chmod(1) symbols (u+x, go-w, a=rX)", s, why)
	}
	if s == "" {
		return nil, bad("empty")
	}
	if s[0] >= '0' && s[0] <= '7' {
		var v uint32
		for _, c := range s {
			if c < '0' || c > '7' {
				return nil, bad("not an octal number")
			}
			v = v<<3 | uint32(c-'0')
			if v > 0o7777 {
				return nil, bad("more than 7777")
			}
		}
		return &modeSpec{octal: v, digits: len(s)}, nil
	}
	spec := &modeSpec{}
	for _, part := range strings.Split(s, ",") {
		var c modeClause
		i := 0
		for ; i < len(part) && whoBits[part[i]] != 0; i++ {
			c.who |= whoBits[part[i]]
		}
		if c.who == 0 {
			c.who = 0o7777
		}
		if i == len(part) {
			return nil, bad("each clause needs +, - or =")
		}
		for i < len(part) {
			op := modeOp{op: part[i]}
			if strings.IndexByte("+-=", op.op) < 0 {
				return nil, bad(fmt.Sprintf("unexpected %q", part[i]))
			}
			i++
			if i < len(part) && strings.IndexByte("ugo", part[i]) >= 0 {
				op.copy = part[i]
				i++
			} else {
				for ; i < len(part) && strings.IndexByte("rwxXst", part[i]) >= 0; i++ {
					op.bits |= permBits[part[i]]
					op.X = op.X || part[i] == 'X'
					op.s = op.s || part[i] == 's'
				}
			}
			if i < len(part) && strings.IndexByte("+-=", part[i]) < 0 {
				return nil, bad(fmt.Sprintf("unexpected %q", part[i]))
			}
			c.ops = append(c.ops, op)
		}
		spec.clauses = append(spec.clauses, c)
	}
	return spec, nil
}

// apply returns the permission bits (0o7777) that the mode gives a file
// whose bits are old.
func (m *modeSpec) apply(old uint32, isDir bool) uint32 {
	old &= 0o7777
	if m.digits > 0 {
		v := m.octal
		if isDir && m.digits < 5 {
			v |= old & 0o6000
		}
		return v
	}
	cur := old
	for _, c := range m.clauses {
		for _, op := range c.ops {
			v := op.bits
			switch op.copy {
			case 'u':
				v = (cur >> 6 & 7) * 0o111
			case 'g':
				v = (cur >> 3 & 7) * 0o111
			case 'o':
				v = (cur & 7) * 0o111
			}
			if op.X && (isDir || cur&0o111 != 0) {
				v |= 0o111
			}
			v &= c.who
			switch op.op {
			case '+':
				cur |= v
			case '-':
				cur &^= v
			case '=':
				clear := c.who
				if isDir && !op.s {
					clear &^= 0o6000
				}
				cur = cur&^clear | v
			}
		}
	}
	return cur
}
