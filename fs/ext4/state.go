package ext4

import "fmt"

// MarkClean records in the primary superblock that the filesystem is clean,
// as e2fsck does after a pass that found nothing wrong: it sets the "valid"
// state bit that a filesystem copied while mounted lacks. Call it only after
// Replay, ReleaseOrphans and a Check without errors. It refuses a filesystem
// whose journal still needs recovery or that is marked as having errors.
func MarkClean(rw ReadWriterAt, size int64) error {
	sb, _, err := repairReadSuper(rw)
	if err != nil {
		return err
	}
	switch {
	case sb.FeatureIncompat&IncompatRecover != 0:
		return fmt.Errorf("ext4: the journal still needs recovery: %w", ErrNeedsRecovery)
	case sb.State&StateErrors != 0:
		return fmt.Errorf("ext4: the filesystem is marked as having errors; run e2fsck -f: %w", ErrCorrupt)
	case sb.State&StateValid != 0:
		return nil
	}
	sb.State |= StateValid
	return repairWriteSuper(rw, sb)
}
