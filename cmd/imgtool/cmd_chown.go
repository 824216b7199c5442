package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	iofs "io/fs"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"imgtool/part"
)

func newChownCmd(g *globalOptions) *cobra.Command {
	return newAttrCmd(g, &cobra.Command{
		Use:   "chown IMAGE OWNER[:GROUP] [PART:]PATH",
		Short: "Change the owner and group of files in an image",
		Long: `Change the owner and group of a file or directory (with -R, of a whole tree) in an
ext2/3/4 partition of a raw image, in place, through an undo log.

OWNER and GROUP are numeric ids (1000:1000) or names, looked up in /etc/passwd and
/etc/group of the image itself (the partition changed, or else the first partition
that has them), never in this computer's. As in chown(1): OWNER alone keeps the
group, :GROUP alone keeps the owner, and OWNER: sets the group to the owner's login
group.

Symbolic links are changed themselves, not their targets (as chown -h does). Unlike
chown(2), setuid and setgid bits are kept. FAT stores no owners: chown on a FAT
partition fails and changes nothing.`,
		Example: `  imgtool chown raspios.img 1000:1000 rootfs:/home/pi/.ssh/authorized_keys
  imgtool chown -R raspios.img pi:pi rootfs:/home/pi
  imgtool chown raspios.img :adm 2:/var/log/app.log`,
	}, runChown)
}

// ownerSpec is a parsed OWNER[:GROUP]: each part empty, numeric or a
// name.
type ownerSpec struct {
	user, group string
	colon       bool
}

func parseOwnerSpec(s string) (ownerSpec, error) {
	u, gr, colon := strings.Cut(s, ":")
	if u == "" && gr == "" || strings.Contains(gr, ":") {
		return ownerSpec{}, usagef("owner %q: give OWNER, OWNER:GROUP, OWNER: or :GROUP (ids or names), e.g. 1000:1000 or pi:pi", s)
	}
	return ownerSpec{user: u, group: gr, colon: colon}, nil
}

// numeric reports whether the spec needs no name lookup.
func (o ownerSpec) numeric() bool {
	isNum := func(s string) bool {
		_, err := strconv.ParseUint(s, 10, 32)
		return s == "" || err == nil
	}
	return isNum(o.user) && isNum(o.group) && !(o.colon && o.group == "" && o.user != "")
}

// resolve returns the ids to set (nil: keep).
func (o ownerSpec) resolve(ids *idTable) (uid, gid *uint32, err error) {
	var login *uint32 // the named user's login group
	if o.user != "" {
		if v, err := strconv.ParseUint(o.user, 10, 32); err == nil {
			u := uint32(v)
			uid = &u
		} else if u, ok := ids.users[o.user]; ok {
			uid, login = &u.uid, &u.gid
		} else {
			return nil, nil, fmt.Errorf("no user %q in the image's /etc/passwd%s; give the numeric id", o.user, ids.where())
		}
	}
	switch {
	case o.group != "":
		if v, err := strconv.ParseUint(o.group, 10, 32); err == nil {
			g := uint32(v)
			gid = &g
		} else if g, ok := ids.groups[o.group]; ok {
			gid = &g
		} else {
			return nil, nil, fmt.Errorf("no group %q in the image's /etc/group%s; give the numeric id", o.group, ids.where())
		}
	case o.colon && o.user != "" && login != nil:
		gid = login
	case o.colon && o.user != "":
		var best string
		for name, u := range ids.users {
			if u.uid == *uid && (best == "" || name < best) {
				best = name
			}
		}
		if best != "" {
			g := ids.users[best].gid
			gid = &g
		} else {
			return nil, nil, fmt.Errorf("%q: no user with id %d in the image's /etc/passwd%s to take the login group from; give OWNER:GROUP", o.user+":", *uid, ids.where())
		}
	}
	return uid, gid, nil
}

// idTable is what the image's /etc/passwd and /etc/group say.
type idTable struct {
	from   string // "partition N", "" when none was found
	users  map[string]struct{ uid, gid uint32 }
	groups map[string]uint32
}

func (t *idTable) where() string {
	if t.from == "" {
		return " (the image has none)"
	}
	return " (read from " + t.from + ")"
}

// readIDs reads the user and group tables from the filesystem being
// changed or, when it has no /etc/passwd, from the first partition that
// has one.
func readIDs(s *editSession, f *editFS) *idTable {
	t := &idTable{users: map[string]struct{ uid, gid uint32 }{}, groups: map[string]uint32{}}
	load := func(fsys iofs.FS, from string) bool {
		pw, err := iofs.ReadFile(fsys, "etc/passwd")
		if err != nil {
			return false
		}
		t.from = from
		for _, fields := range idLines(pw) {
			if len(fields) >= 4 {
				u, err1 := strconv.ParseUint(fields[2], 10, 32)
				g, err2 := strconv.ParseUint(fields[3], 10, 32)
				if err1 == nil && err2 == nil {
					if _, dup := t.users[fields[0]]; !dup {
						t.users[fields[0]] = struct{ uid, gid uint32 }{uint32(u), uint32(g)}
					}
				}
			}
		}
		gr, _ := iofs.ReadFile(fsys, "etc/group")
		for _, fields := range idLines(gr) {
			if len(fields) >= 3 {
				if g, err := strconv.ParseUint(fields[2], 10, 32); err == nil {
					if _, dup := t.groups[fields[0]]; !dup {
						t.groups[fields[0]] = uint32(g)
					}
				}
			}
		}
		return true
	}
	if load(f.fsys, fmt.Sprintf("partition %d", f.part.Number)) {
		return t
	}
	tbl, err := part.Read(s.img, s.img.Size())
	if err != nil {
		return t
	}
	for _, p := range tbl.Partitions {
		if p.Extended || p.Number == f.part.Number {
			continue
		}
		o, err := selectTarget(s.img, s.path, strconv.Itoa(p.Number), false)
		if err != nil {
			continue
		}
		if load(o.fsys, fmt.Sprintf("partition %d", p.Number)) {
			return t
		}
	}
	return t
}

// idLines splits a passwd-style file into the fields of its lines.
func idLines(b []byte) [][]string {
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}

func runChown(_ context.Context, opts attrOptions, args []string, g *globalOptions) error {
	owner, err := parseOwnerSpec(args[1])
	if err != nil {
		return err
	}
	sum := attrSummary{Action: "chown", Owner: args[1]}
	return runAttr(g, opts, args, sum, func(s *editSession, f *editFS) (attrChange, error) {
		if f.ext4 == nil {
			return nil, fmt.Errorf("%s: partition %d is %s, which stores no owners; nothing was changed", args[0], f.part.Number, f.info.Type)
		}
		ids := &idTable{}
		if !owner.numeric() {
			ids = readIDs(s, f)
		}
		uid, gid, err := owner.resolve(ids)
		if err != nil {
			return nil, fmt.Errorf("%s: %w; nothing was changed", args[1], err)
		}
		return func(it attrItem, _ bool) (bool, error) {
			u, gr := it.uid, it.gid
			if uid != nil {
				u = *uid
			}
			if gid != nil {
				gr = *gid
			}
			return false, editError(it.path, f.ext4.Chown(it.path, u, gr))
		}, nil
	})
}
