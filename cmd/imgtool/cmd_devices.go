package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"imgtool/flash"
	"imgtool/internal/units"
)

type devicesOptions struct {
	json bool
	all  bool
}

func newDevicesCmd(g *globalOptions) *cobra.Command {
	var opts devicesOptions
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List the disks an image can be flashed to",
		Long: `List the whole-disk devices of this computer (SD cards, USB drives, internal disks):
path, size, transport, whether they are removable or read-only, model and mount
points. Disks that hold the running system are marked SYSTEM with the reason;
imgtool flash refuses them.

RAM disks, zram, device-mapper and RAID devices, unattached loop devices and empty
card readers are left out unless --all is given.`,
		Example: `  imgtool devices
  imgtool devices --all
  imgtool devices --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDevices(cmd.Context(), opts, args, g)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.json, "json", false, "print one JSON document")
	f.BoolVar(&opts.all, "all", false, "include RAM disks, device-mapper, RAID and empty devices")
	return cmd
}

// deviceJSON is a disk as devices --json shows it.
type deviceJSON struct {
	flash.Device
	MountPoints  []string `json:"mount_points"`
	System       bool     `json:"system"`
	SystemReason string   `json:"system_reason,omitempty"`
}

func runDevices(_ context.Context, opts devicesOptions, _ []string, g *globalOptions) error {
	list := flash.List
	if opts.all {
		list = flash.ListAll
	}
	devs, err := list()
	if err != nil {
		return fmt.Errorf("listing disks: %w", err)
	}
	out := make([]deviceJSON, 0, len(devs))
	for _, d := range devs {
		sys, why := flash.IsSystemDisk(d)
		mps := d.MountPoints()
		if mps == nil {
			mps = []string{}
		}
		out = append(out, deviceJSON{Device: d, MountPoints: mps, System: sys, SystemReason: why})
	}
	if opts.json {
		return writeJSON(g.stdout, struct {
			Devices []deviceJSON `json:"devices"`
		}{out})
	}
	return printDevices(g.stdout, out)
}

func printDevices(w io.Writer, devs []deviceJSON) error {
	if len(devs) == 0 {
		_, err := fmt.Fprintln(w, "No disks found (imgtool devices --all shows every block device).")
		return err
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tSIZE\tTRANSPORT\tREMOVABLE\tRO\tMODEL\tMOUNTED AT\tSYSTEM")
	for _, d := range devs {
		model := strings.TrimSpace(d.Vendor + " " + d.Model)
		if model == "" {
			model = "-"
		}
		mounts := strings.Join(d.MountPoints, ",")
		if mounts == "" {
			mounts = "-"
		}
		system := "-"
		if d.System {
			system = "SYSTEM: " + d.SystemReason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Path, units.Human(d.Size), orDash(fmt.Sprint(d.Transport)),
			yesNo(d.Removable), yesNo(d.ReadOnly), model, mounts, system)
	}
	tw.Flush()
	_, err := io.WriteString(w, b.String())
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
