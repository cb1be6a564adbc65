package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"butterd/dbusapi"
)

// The volume verbs: create, rm, ls, inspect, unmount --forget.

// optionsFlag collects repeated -o KEY=VALUE.
type optionsFlag map[string]string

func (o optionsFlag) String() string { return "" }

func (o optionsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	switch {
	case !ok:
		return fmt.Errorf("option %q is not KEY=VALUE", s)
	case k == "":
		return fmt.Errorf("option %q has an empty key", s)
	}
	if _, dup := o[k]; dup {
		return fmt.Errorf("option %q given twice", k)
	}
	o[k] = v
	return nil
}

type volumeCreateCmd struct {
	*app
	opts optionsFlag
}

func (c *volumeCreateCmd) Flags(fs *flag.FlagSet) {
	c.opts = optionsFlag{}
	fs.Var(c.opts, "o", "a driver option `KEY=VALUE` (repeatable)")
	fs.Var(c.opts, "opt", "same as -o `KEY=VALUE`")
}

func (c *volumeCreateCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, []string{"NAME"}); err != nil {
		return err
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	if _, err := m.CreateVolume(args[0], c.opts); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(struct {
			Name string `json:"name"`
		}{args[0]})
	}
	return c.println(args[0])
}

type volumeRmCmd struct {
	*app
	noFinal bool
}

func (c *volumeRmCmd) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.noFinal, "no-final-snapshot", false, "remove without taking a final snapshot first")
}

func (c *volumeRmCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, []string{"NAME"}); err != nil {
		return err
	}
	var flags uint64
	if c.noFinal {
		flags |= dbusapi.RemoveNoFinalSnapshot
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	final, schedules, err := m.RemoveVolumeReport(args[0], flags)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(struct {
			Name      string   `json:"name"`
			Final     string   `json:"final_snapshot"`
			Schedules []string `json:"schedules_removed"`
		}{args[0], final, nonNilStrings(schedules)})
	}
	for _, timer := range schedules {
		fmt.Fprintf(c.stderr, "schedule removed with the volume: %s\n", timer)
	}
	if final == "" {
		return nil
	}
	return c.println(final)
}

type volumeLsCmd struct {
	*app
	quiet bool
}

func (c *volumeLsCmd) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.quiet, "q", false, "print names only")
	fs.BoolVar(&c.quiet, "quiet", false, "same as -q")
}

func (c *volumeLsCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, nil); err != nil {
		return err
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	rows, err := m.ListVolumes()
	if err != nil {
		return err
	}
	switch {
	case c.json && c.quiet:
		names := make([]string, len(rows))
		for i, r := range rows {
			names[i] = r.Name
		}
		return c.printJSON(names)
	case c.json:
		return c.printJSON(volumesJSON(rows))
	case c.quiet:
		for _, r := range rows {
			if err := c.println(r.Name); err != nil {
				return err
			}
		}
		return nil
	}
	return volumeTable(c.out, rows)
}

type volumeInspectCmd struct{ *app }

func (c *volumeInspectCmd) Flags(*flag.FlagSet) {}

func (c *volumeInspectCmd) Run(ctx context.Context, args []string) error {
	if err := wantArgs(args, []string{"NAME"}); err != nil {
		return err
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	path, err := m.GetVolume(args[0])
	if err != nil {
		return err
	}
	props, err := m.Properties(path, dbusapi.VolumeIface)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(propsJSON(props))
	}
	return propsText(c.out, props)
}

const forgetHelp = `Docker unmounts a volume itself when its containers stop; butterd counts
those mounts and refuses to remove or restore a volume in use. A container
that crashed, or a dockerd that was killed, can leave a reference behind:
--forget drops every mount reference of the volume (use it only when no
container uses the volume).`

type volumeUnmountCmd struct {
	*app
	forget bool
}

func (c *volumeUnmountCmd) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.forget, "forget", false, "drop the volume's mount references left by crashed containers")
}

func (c *volumeUnmountCmd) Run(ctx context.Context, args []string) error {
	if !c.forget {
		return usagef("Docker unmounts volumes itself when their containers stop; --forget drops mount references left by a crashed container: run 'butterctl volume unmount --forget NAME' when no container uses the volume")
	}
	if err := wantArgs(args, []string{"NAME"}); err != nil {
		return err
	}
	m, err := c.bus()
	if err != nil {
		return err
	}
	n, err := m.ForgetMounts(args[0])
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(struct {
			Name      string `json:"name"`
			Forgotten uint32 `json:"forgotten"`
		}{args[0], n})
	}
	return c.println(fmt.Sprint(n))
}

func (optionsFlag) repeatable() {}
