package customize

import (
	"errors"
	"fmt"
	iofs "io/fs"
)

// Apply makes the plan's changes through the editors (boot for "boot"
// changes, root for "root" ones). It stops at the first error; the caller
// is expected to roll back (the editors write through an undo log).
func (p *Plan) Apply(boot, root Editor) error {
	for _, c := range p.Changes {
		ed := root
		if c.FS == "boot" {
			ed = boot
		}
		if ed == nil {
			return fmt.Errorf("customize: no %s filesystem to change %s", c.FS, c.Path)
		}
		var err error
		switch c.Action {
		case "write":
			err = ed.WriteFile(c.Path, c.Data, c.Mode.Perm()|c.Mode&(iofs.ModeSetuid|iofs.ModeSetgid|iofs.ModeSticky), c.UID, c.GID)
		case "mkdir":
			err = ed.Mkdir(c.Path, c.Mode.Perm(), c.UID, c.GID)
			if errors.Is(err, iofs.ErrExist) {
				err = nil
			}
		case "symlink":
			err = ed.Symlink(c.Target, c.Path)
		case "remove":
			err = ed.Remove(c.Path)
		default:
			err = fmt.Errorf("unknown action %q", c.Action)
		}
		if err != nil {
			return fmt.Errorf("customize: %s %s:/%s: %w", c.Action, c.FS, c.Path, err)
		}
	}
	return nil
}

// Needs reports whether the plan changes the named filesystem.
func (p *Plan) Needs(fsName string) bool {
	for _, c := range p.Changes {
		if c.FS == fsName {
			return true
		}
	}
	return false
}
