package flash

// A small reader for the XML property lists that macOS's diskutil prints.
// It has no build tag so that it is tested everywhere on recorded output.

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxPlistDepth bounds nesting in a property list.
const maxPlistDepth = 32

// parsePlist decodes an XML property list into map[string]any, []any,
// string, int64, bool and float64 values.
func parsePlist(r io.Reader) (any, error) {
	d := xml.NewDecoder(r)
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("flash: reading property list: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local == "plist" {
				continue
			}
			return plistValue(d, se, 0)
		}
	}
}

func plistValue(d *xml.Decoder, se xml.StartElement, depth int) (any, error) {
	if depth > maxPlistDepth {
		return nil, errors.New("flash: property list nested too deeply")
	}
	switch se.Name.Local {
	case "dict":
		m := map[string]any{}
		key := ""
		for {
			tok, err := d.Token()
			if err != nil {
				return nil, err
			}
			switch t := tok.(type) {
			case xml.StartElement:
				if t.Name.Local == "key" {
					var k string
					if err := d.DecodeElement(&k, &t); err != nil {
						return nil, err
					}
					key = k
					continue
				}
				v, err := plistValue(d, t, depth+1)
				if err != nil {
					return nil, err
				}
				m[key] = v
			case xml.EndElement:
				return m, nil
			}
		}
	case "array":
		var a []any
		for {
			tok, err := d.Token()
			if err != nil {
				return nil, err
			}
			switch t := tok.(type) {
			case xml.StartElement:
				v, err := plistValue(d, t, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			case xml.EndElement:
				return a, nil
			}
		}
	case "true", "false":
		if err := d.Skip(); err != nil {
			return nil, err
		}
		return se.Name.Local == "true", nil
	}
	var s string
	if err := d.DecodeElement(&s, &se); err != nil {
		return nil, err
	}
	switch se.Name.Local {
	case "integer":
		return strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	case "real":
		return strconv.ParseFloat(strings.TrimSpace(s), 64)
	}
	return s, nil // string, date, data
}

func plistString(m map[string]any, k string) string { s, _ := m[k].(string); return s }
func plistInt(m map[string]any, k string) int64     { n, _ := m[k].(int64); return n }
func plistBool(m map[string]any, k string) bool     { b, _ := m[k].(bool); return b }

// diskutilDisks reads "diskutil list -plist" output: the whole disks with
// their partitions (sizes and mount points filled in).
func diskutilDisks(r io.Reader) ([]Device, error) {
	v, err := parsePlist(r)
	if err != nil {
		return nil, err
	}
	root, _ := v.(map[string]any)
	all, _ := root["AllDisksAndPartitions"].([]any)
	var devs []Device
	for _, x := range all {
		m, _ := x.(map[string]any)
		id := plistString(m, "DeviceIdentifier")
		if id == "" {
			continue
		}
		d := Device{Path: "/dev/" + id, Name: id, Size: plistInt(m, "Size")}
		if mp := plistString(m, "MountPoint"); mp != "" {
			d.Mounts = []Mount{{Point: mp}}
		}
		parts, _ := m["Partitions"].([]any)
		for i, px := range parts {
			pm, _ := px.(map[string]any)
			pid := plistString(pm, "DeviceIdentifier")
			p := Partition{Path: "/dev/" + pid, Name: pid, Number: i + 1, Size: plistInt(pm, "Size")}
			if mp := plistString(pm, "MountPoint"); mp != "" {
				p.Mounts = []Mount{{Point: mp, FSType: plistString(pm, "Content")}}
			}
			d.Partitions = append(d.Partitions, p)
		}
		devs = append(devs, d)
	}
	return devs, nil
}

// applyDiskutilInfo fills in a disk from "diskutil info -plist DISK".
func applyDiskutilInfo(d *Device, r io.Reader) error {
	v, err := parsePlist(r)
	if err != nil {
		return err
	}
	m, _ := v.(map[string]any)
	if n := plistInt(m, "TotalSize"); n > 0 {
		d.Size = n
	}
	d.Model = strings.TrimSpace(plistString(m, "MediaName"))
	d.SectorSize = int(plistInt(m, "DeviceBlockSize"))
	d.ReadOnly = m["WritableMedia"] == false
	d.Removable = plistBool(m, "Removable") || plistBool(m, "RemovableMedia") || plistBool(m, "Ejectable") || !plistBool(m, "Internal")
	switch bus := plistString(m, "BusProtocol"); bus {
	case "USB":
		d.Transport = TransportUSB
	case "Secure Digital", "SD":
		d.Transport = TransportMMC
	case "PCI-Express", "Apple Fabric", "NVMExpress":
		d.Transport = TransportNVMe
	case "SATA", "ATA":
		d.Transport = TransportSATA
	case "Disk Image", "Virtual Interface":
		d.Transport = TransportVirtual
	}
	if d.Transport == TransportUSB || d.Transport == TransportMMC {
		d.Removable = d.Removable || d.Transport == TransportUSB
	}
	return nil
}
