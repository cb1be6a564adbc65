package service

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"butterd/btrfs"
	"butterd/service/retention"
	"butterd/units"
)

// CreateOptions are the options of a new volume (Docker's `-o key=value`).
type CreateOptions struct {
	NoCOW           bool   // copyonwrite=false: NOCOW on the empty volume root
	From            string // a snapshot (VOL@TIME) or volume to start from
	NoFinalSnapshot bool   // finalsnapshot=false: removing takes no snapshot
	// Policy names a [policy NAME] section of the config file whose options
	// apply where none is given explicitly.
	Policy string
	// Snapshot is the interval of the volume's snapshot schedule
	// (snapshot=SPAN, a bare number meaning minutes); 0: none.
	Snapshot time.Duration
	// Purge is the pattern of the volume's purge schedule (purge=PATTERN),
	// run every PurgeEvery; "": none.
	Purge string
	// Replicate is the host of the volume's replicate schedule
	// (replicate=HOST: a peer's name or host[:port]), run every
	// ReplicateEvery; "": none.
	Replicate string
	// Synchronize are the hosts of the volume's synchronize schedule
	// (synchronize=HOST[,HOST...]), run every ReplicateEvery; "": none.
	Synchronize string

	// Strict refuses (ErrExists) a create of a volume that exists with
	// options it does not have, instead of returning it unchanged. Docker's
	// Create stays idempotent; a caller that can be told is told.
	Strict bool

	given optionSet // options given explicitly (a policy fills the others)
}

// PurgeEvery is how often the purge schedule of a purge=PATTERN option runs.
const PurgeEvery = time.Hour

// ReplicateEvery is how often the schedules of the replicate=HOST and
// synchronize=HOST[,HOST...] options run.
const ReplicateEvery = time.Hour

// optionSet records which options were given.
type optionSet uint8

const (
	optCopyOnWrite optionSet = 1 << iota
	optFinalSnapshot
	optFrom
	optSnapshot
	optPurge
	optReplicate
	optSynchronize
)

var createOptionNames = []string{"copyonwrite", "finalsnapshot", "from", "policy", "purge", "replicate", "snapshot", "synchronize"}

// ParseCreateOptions checks Docker-style options and refuses unknown keys and
// bad values, naming what is allowed.
func ParseCreateOptions(opts map[string]string) (CreateOptions, error) {
	var o CreateOptions
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// Keys match case-insensitively: two spellings of one option would
	// leave the choice to sort order.
	seen := make(map[string]string, len(keys))
	for _, k := range keys {
		v := opts[k]
		if prev, ok := seen[strings.ToLower(k)]; ok {
			return o, errorf(ErrInvalidArg, "options %q and %q name the same option (names ignore case): give it once", prev, k)
		}
		seen[strings.ToLower(k)] = k
		switch strings.ToLower(k) {
		case "copyonwrite":
			b, err := parseBool(k, v)
			if err != nil {
				return o, err
			}
			o.NoCOW = !b
			o.given |= optCopyOnWrite
		case "finalsnapshot":
			b, err := parseBool(k, v)
			if err != nil {
				return o, err
			}
			o.NoFinalSnapshot = !b
			o.given |= optFinalSnapshot
		case "from":
			if err := validateSource(v); err != nil {
				return o, errorf(ErrInvalidArg, "option from=%q: %v", v, err)
			}
			o.From = v
			o.given |= optFrom
		case "policy":
			if v == "" {
				return o, errorf(ErrInvalidArg, "option policy= needs the name of a [policy NAME] section of the config file")
			}
			o.Policy = v
		case "snapshot":
			d, err := ParseSpan(v)
			if err != nil {
				return o, errorf(ErrInvalidArg, "option snapshot=%q: %v (0 for none)", v, err)
			}
			if d != 0 && (d < time.Second || d%time.Microsecond != 0) {
				return o, errorf(ErrInvalidArg, "option snapshot=%q: the interval must be at least 1s (0 for none)", v)
			}
			o.Snapshot = d
			o.given |= optSnapshot
		case "purge":
			switch {
			case none(v):
				o.Purge = ""
			default:
				if _, _, err := retention.ParsePattern(v); err != nil {
					return o, errorf(ErrInvalidArg, "option purge=%q: %v (none for no purge schedule)", v, err)
				}
				o.Purge = v
			}
			o.given |= optPurge
		case "replicate", "synchronize":
			l := strings.ToLower(k)
			if none(v) {
				v = ""
			} else if err := hostsOption(l, v); err != nil {
				return o, err
			}
			if l == "replicate" {
				o.Replicate, o.given = v, o.given|optReplicate
			} else {
				o.Synchronize, o.given = v, o.given|optSynchronize
			}
		default:
			return o, errorf(ErrInvalidArg, "unknown option %q: allowed options are %s", k, strings.Join(createOptionNames, ", "))
		}
	}
	return o, nil
}

// parsePolicies checks the policies of the config file: each one's options
// as ParseCreateOptions reads them, without from= or policy=.
func parsePolicies(raw map[string]map[string]string) (map[string]CreateOptions, error) {
	out := make(map[string]CreateOptions, len(raw))
	for name, opts := range raw {
		if name == "" {
			return nil, errorf(ErrInvalidArg, "a policy has no name: sections are [policy NAME]")
		}
		for k := range opts {
			if l := strings.ToLower(k); l == "from" || l == "policy" {
				return nil, errorf(ErrInvalidArg, "policy %q: option %q is given per volume, not in a policy", name, k)
			}
		}
		o, err := ParseCreateOptions(opts)
		if err != nil {
			return nil, errorf(ErrInvalidArg, "policy %q: %v", name, err)
		}
		out[name] = o
	}
	return out, nil
}

// withPolicy fills the options not given explicitly from o's policy.
func (s *Store) withPolicy(o CreateOptions) (CreateOptions, error) {
	if o.Policy == "" {
		return o, nil
	}
	p, ok := s.policies[o.Policy]
	if !ok {
		names := make([]string, 0, len(s.policies))
		for n := range s.policies {
			names = append(names, n)
		}
		sort.Strings(names)
		if len(names) == 0 {
			return o, errorf(ErrInvalidArg, "unknown policy %q: no policies are configured ([policy NAME] sections of the config file)", o.Policy)
		}
		return o, errorf(ErrInvalidArg, "unknown policy %q: known policies are %s", o.Policy, strings.Join(names, ", "))
	}
	fill := p.given &^ o.given
	if fill&optCopyOnWrite != 0 {
		o.NoCOW = p.NoCOW
	}
	if fill&optFinalSnapshot != 0 {
		o.NoFinalSnapshot = p.NoFinalSnapshot
	}
	if fill&optSnapshot != 0 {
		o.Snapshot = p.Snapshot
	}
	if fill&optPurge != 0 {
		o.Purge = p.Purge
	}
	if fill&optReplicate != 0 {
		o.Replicate = p.Replicate
	}
	if fill&optSynchronize != 0 {
		o.Synchronize = p.Synchronize
	}
	o.given |= fill
	return o, nil
}

// schedules are the schedules a new volume's options ask for.
func (o CreateOptions) schedules(volume string) []units.Schedule {
	var out []units.Schedule
	if o.Snapshot != 0 {
		out = append(out, units.Schedule{Action: units.ActionSnapshot, Volume: volume, Every: o.Snapshot})
	}
	if o.Purge != "" {
		out = append(out, units.Schedule{Action: units.ActionPurge, Volume: volume, Arg: o.Purge, Every: PurgeEvery})
	}
	if o.Replicate != "" {
		out = append(out, units.Schedule{Action: units.ActionReplicate, Volume: volume, Arg: o.Replicate, Every: ReplicateEvery})
	}
	if o.Synchronize != "" {
		out = append(out, units.Schedule{Action: units.ActionSynchronize, Volume: volume, Arg: o.Synchronize, Every: ReplicateEvery})
	}
	return out
}

// none says whether an option's value means no schedule.
func none(v string) bool {
	switch strings.ToLower(v) {
	case "", "0", "none":
		return true
	}
	return false
}

// hostsOption checks the syntax of replicate=HOST or
// synchronize=HOST[,HOST...]; whether each host is a peer's name or an
// address is checked with the schedule.
func hostsOption(key, v string) error {
	action := units.ActionReplicate
	if key == "synchronize" {
		action = units.ActionSynchronize
	}
	sc := units.Schedule{Action: action, Volume: "probe", Arg: v, Every: ReplicateEvery}
	if err := sc.Validate(); err != nil {
		return errorf(ErrInvalidArg, "option %s=%q: %v (none for no %s schedule)", key, v, err, action)
	}
	return nil
}

func parseBool(key, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, errorf(ErrInvalidArg, "option %s=%q: the value must be true or false", key, v)
}

// validateSource checks a name that may be a volume or a snapshot.
func validateSource(name string) error {
	if strings.Contains(name, "@") {
		return ValidateSnapshotName(name)
	}
	return ValidateName(name)
}

// unappliedOptions lists, as key=value, the options given in o (or filled
// by its policy) that the existing volume name does not have: a from=
// always, since a volume that exists was not just made from it.
func (s *Store) unappliedOptions(name string, o CreateOptions) []string {
	var out []string
	if o.given&optCopyOnWrite != 0 {
		if on, err := btrfs.NoCOW(s.volumePath(name)); err != nil || on != o.NoCOW {
			out = append(out, fmt.Sprintf("copyonwrite=%t", !o.NoCOW))
		}
	}
	if o.given&optFinalSnapshot != 0 && s.meta.finalSnapshot(name) == o.NoFinalSnapshot {
		out = append(out, fmt.Sprintf("finalsnapshot=%t", !o.NoFinalSnapshot))
	}
	if o.given&optFrom != 0 {
		out = append(out, "from="+o.From)
	}
	if o.given&(optSnapshot|optPurge|optReplicate|optSynchronize) == 0 {
		return out
	}
	has := s.volumeSchedules(name)
	sched := func(given optionSet, key, value, noneValue string, match func(units.Schedule) bool) {
		if o.given&given == 0 {
			return
		}
		found := slices.ContainsFunc(has, func(f scheduleFile) bool { return match(f.sched) })
		if found == (value == "") {
			if value == "" {
				value = noneValue
			}
			out = append(out, key+"="+value)
		}
	}
	snapshot := ""
	if o.Snapshot != 0 {
		snapshot = units.FormatSpan(o.Snapshot)
	}
	sched(optSnapshot, "snapshot", snapshot, "0", func(sc units.Schedule) bool {
		return sc.Action == units.ActionSnapshot && (o.Snapshot == 0 || sc.Every == o.Snapshot && sc.OnCalendar == "")
	})
	sched(optPurge, "purge", o.Purge, "none", func(sc units.Schedule) bool {
		return sc.Action == units.ActionPurge && (o.Purge == "" || samePattern(sc.Arg, o.Purge))
	})
	sched(optReplicate, "replicate", o.Replicate, "none", func(sc units.Schedule) bool {
		return sc.Action == units.ActionReplicate && (o.Replicate == "" || sc.Arg == o.Replicate)
	})
	sched(optSynchronize, "synchronize", o.Synchronize, "none", func(sc units.Schedule) bool {
		return sc.Action == units.ActionSynchronize && (o.Synchronize == "" || sc.Arg == o.Synchronize)
	})
	return out
}

// samePattern says whether two purge patterns mean the same.
func samePattern(a, b string) bool {
	pa, _, err := retention.ParsePattern(a)
	if err != nil {
		return a == b
	}
	pb, _, err := retention.ParsePattern(b)
	return err == nil && pa.String() == pb.String()
}
