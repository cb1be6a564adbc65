package units

import (
	"strings"
	"time"
)

// Actions of a schedule (buttervolume's schedule actions).
const (
	ActionSnapshot    = "snapshot"    // take a snapshot of Volume
	ActionPurge       = "purge"       // purge Volume's snapshots with pattern Arg
	ActionReplicate   = "replicate"   // take a snapshot and send it to host Arg
	ActionSynchronize = "synchronize" // pull newer files from hosts Arg (comma-separated)

	// Snapshots of several volumes at once, with one timestamp: Volume
	// then names a group of butterd's, or a compose project.
	ActionSnapshotGroup   = "snapshot-group"
	ActionSnapshotProject = "snapshot-project"
)

// Schedule is one scheduled action on one volume. Exactly one of Every and
// OnCalendar is set.
type Schedule struct {
	Action string // ActionSnapshot, ActionPurge, ActionReplicate or ActionSynchronize
	Volume string
	// Arg is the purge pattern, the replicate host ([user@]host[:port]) or
	// the synchronize hosts (comma-separated); empty for snapshot.
	Arg        string
	Every      time.Duration // interval (at least 1s, whole microseconds), or 0
	OnCalendar string        // systemd calendar expression (systemd.time(7)), or ""
	// Accuracy overrides the timer's AccuracySec= (0: the default, see the
	// package documentation).
	Accuracy time.Duration
}

// Key identifies a schedule: "action/volume" for snapshot and purge,
// "action/volume/arg" for replicate and synchronize. Setting a schedule with
// the key of an existing one replaces it. Key does not validate.
func (s Schedule) Key() string {
	if keyedByArg(s.Action) {
		return s.Action + "/" + s.Volume + "/" + s.Arg
	}
	return s.Action + "/" + s.Volume
}

func keyedByArg(action string) bool {
	return action == ActionReplicate || action == ActionSynchronize
}

// Validate checks every field and says what is allowed when one is wrong.
// Its errors match ErrInvalid.
func (s Schedule) Validate() error {
	if err := checkVolume(s.Volume); err != nil {
		return err
	}
	switch s.Action {
	case ActionSnapshot, ActionSnapshotGroup, ActionSnapshotProject:
		if s.Arg != "" {
			return invalidf("schedule %s of %q takes no argument, got %q", s.Action, s.Volume, s.Arg)
		}
	case ActionPurge:
		if err := checkPattern(s.Arg); err != nil {
			return err
		}
	case ActionReplicate:
		if err := checkHost(s.Arg); err != nil {
			return invalidf("replicate host: %v", err)
		}
	case ActionSynchronize:
		if err := checkHosts(s.Arg); err != nil {
			return err
		}
	default:
		if err := checkText("action", s.Action); err != nil {
			return err
		}
		return invalidf("schedule action %q: use %s, %s, %s, %s, %s or %s", s.Action,
			ActionSnapshot, ActionPurge, ActionReplicate, ActionSynchronize, ActionSnapshotGroup, ActionSnapshotProject)
	}
	switch {
	case s.Every != 0 && s.OnCalendar != "":
		return invalidf("schedule %s: give either an interval (%s) or a calendar (%q), not both", s.Key(), FormatSpan(s.Every), s.OnCalendar)
	case s.Every == 0 && s.OnCalendar == "":
		return invalidf("schedule %s: give an interval or a calendar expression", s.Key())
	case s.Every != 0:
		if err := checkSpan("interval", s.Every, time.Second); err != nil {
			return err
		}
	default:
		if err := checkCalendar(s.OnCalendar); err != nil {
			return err
		}
	}
	if s.Accuracy != 0 {
		if err := checkSpan("accuracy", s.Accuracy, time.Microsecond); err != nil {
			return err
		}
	}
	return nil
}

// Volume names (DESIGN.md "Names"): [a-zA-Z0-9][a-zA-Z0-9_.-]+, 2 to 96
// characters, never "..".
const (
	minNameLen = 2
	maxNameLen = 96
)

func checkVolume(v string) error {
	const rule = "[a-zA-Z0-9][a-zA-Z0-9_.-]+, 2 to 96 characters"
	if err := checkText("volume name", v); err != nil {
		return err
	}
	if len(v) < minNameLen || len(v) > maxNameLen {
		return invalidf("volume name %q has %d characters: names are %s", v, len(v), rule)
	}
	if !alnum(v[0]) {
		return invalidf("volume name %q must start with a letter or digit: names are %s", v, rule)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !alnum(c) && c != '_' && c != '.' && c != '-' {
			return invalidf("volume name %q includes %q: names are %s", v, rune(c), rule)
		}
	}
	if strings.Contains(v, "..") {
		return invalidf("volume name %q must not contain '..'", v)
	}
	return nil
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// checkPattern takes a purge pattern as given (service checks its grammar)
// but keeps it writable in a unit: no control characters, backslashes,
// surrounding spaces, and no leading '-' that butterctl would take for a flag.
func checkPattern(p string) error {
	if p == "" {
		return invalidf("purge schedule needs a pattern such as 1d:4w:1y")
	}
	if err := checkText("purge pattern", p); err != nil {
		return err
	}
	if err := checkUnitValue("purge pattern", p); err != nil {
		return err
	}
	if p[0] == '-' {
		return invalidf("purge pattern %q must not start with '-'", p)
	}
	return nil
}

func checkCalendar(c string) error {
	if err := checkText("calendar expression", c); err != nil {
		return err
	}
	return checkUnitValue("calendar expression", c)
}

// checkUnitValue refuses what a unit file cannot carry back unchanged.
func checkUnitValue(what, v string) error {
	if strings.TrimSpace(v) != v {
		return invalidf("%s %q must not start or end with spaces", what, v)
	}
	if strings.Contains(v, `\`) {
		return invalidf("%s %q must not contain a backslash", what, v)
	}
	return nil
}

func checkSpan(what string, d, min time.Duration) error {
	if d < min {
		return invalidf("schedule %s %v is too short: at least %s", what, d, FormatSpan(min))
	}
	if d%time.Microsecond != 0 {
		return invalidf("schedule %s %v is finer than systemd's microseconds", what, d)
	}
	return nil
}
