package main

import "fmt"

// rows are the comparisons, in the order they are printed.
var rows = []row{
	{
		// The partition table and the root filesystem's header, as a user
		// would get them from the peers: sfdisk -d for the table, dumpe2fs -h
		// for the filesystem.
		name: "inspect (counters) vs sfdisk -d + dumpe2fs -h",
		ours: func(e *env) []string { return []string{e.imgtool, "inspect", "--counters", e.img} },
		peer: func(e *env) [][]string {
			return [][]string{
				{"sfdisk", "-d", e.img},
				{"dumpe2fs", "-h", fmt.Sprintf("%s?offset=%d", e.img, e.rootOff)},
			}
		},
	},
	{
		// Exact used/free of every filesystem from the allocation maps.
		name: "inspect (exact) vs sfdisk -d + dumpe2fs -h",
		ours: func(e *env) []string { return []string{e.imgtool, "inspect", e.img} },
		peer: func(e *env) [][]string {
			return [][]string{
				{"sfdisk", "-d", e.img},
				{"dumpe2fs", "-h", fmt.Sprintf("%s?offset=%d", e.img, e.rootOff)},
			}
		},
	},
}
