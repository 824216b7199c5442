package flash

import (
	"fmt"

	"imgtool/image"
)

// ReadDevice opens the block device at path read-only, shared with other
// readers and writers, as an Image for making a backup. It refuses a path
// that is not a device. Callers should warn when MountedReadWrite lists
// mount points: files may change while the device is read.
func ReadDevice(path string) (image.Image, error) {
	if !image.IsDevice(path) {
		return nil, fmt.Errorf("flash: %s is not a block device; give a disk such as /dev/sdX (imgtool flash --list shows them)", path)
	}
	img, err := image.Open(path)
	if err != nil {
		return nil, fmt.Errorf("flash: %w", err)
	}
	return img, nil
}
