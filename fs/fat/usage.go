package fat

import "imgtool/fs/meta"

// Usage counts the clusters the FAT marks as not free (bad clusters
// included). Used covers the reserved sectors, the FATs, the FAT12/16 root
// directory and those clusters; Free is the free clusters. Sectors past the
// last whole cluster are in neither.
func (f *FS) Usage() (meta.Usage, error) {
	g := f.g
	if err := f.fat.loadAll(); err != nil {
		return meta.Usage{}, err
	}
	var used int64
	for c := uint32(firstCluster); c-firstCluster < g.clusters; c++ {
		if f.fat.at(c) != 0 { // loaded above
			used++
		}
	}
	return meta.Usage{
		Total: g.fsSize,
		Used:  g.metadataBytes + used*g.clusterSize,
		Free:  (int64(g.clusters) - used) * g.clusterSize,
	}, nil
}

// Allocated returns the byte ranges in use, sorted and merged: the
// reserved sectors, the FATs, the FAT12/16 root directory and every
// cluster the FAT marks as not free.
func (f *FS) Allocated() ([]meta.Range, error) {
	g := f.g
	if err := f.fat.loadAll(); err != nil {
		return nil, err
	}
	out := []meta.Range{{Off: 0, Len: g.metadataBytes}}
	for c := uint32(firstCluster); c-firstCluster < g.clusters; c++ {
		if f.fat.at(c) == 0 { // loaded above
			continue
		}
		off := g.clusterOff(c)
		if last := &out[len(out)-1]; last.Off+last.Len == off {
			last.Len += g.clusterSize
		} else {
			out = append(out, meta.Range{Off: off, Len: g.clusterSize})
		}
	}
	return out, nil
}
