// Package units renders and reads the systemd units behind butterd's
// schedules (DESIGN.md "Schedules are systemd timers").
//
// This part is pure: it turns a Schedule into a butterd-sched-*.timer and
// .service pair, reads a schedule back from its timer, and renders the
// butterd-schedules.target that groups the timers. It imports nothing from
// the rest of butterd; service imports it.
//
// Decisions:
//
//   - Identity. A schedule is keyed by (action, volume) for snapshot and
//     purge (a new purge pattern replaces the volume's purge schedule), and
//     by (action, volume, arg) for replicate (one host) and synchronize (the
//     comma-separated host list, in the order given). Key gives it as
//     "action/volume[/arg]"; unit names are built from that key alone.
//   - Names. "butterd-sched-" + Escape(key) + ".timer"/".service", Escape
//     being systemd-escape's rules, so "/" reads as "-" and
//     `systemd-escape -u` gives the key back. When the .service name would
//     pass 255 characters the escaped key is cut (never inside a \xNN) and
//     "-" plus the first 16 hex digits of sha256(key) are appended; a name
//     that would end like such a suffix on its own is hashed too, so hashed
//     and plain names can never meet.
//   - Intervals fire OnActiveSec=min(Every, 1min) after the timer starts (at
//     boot through the target, or on resume) and then OnUnitActiveSec=Every:
//     a host that reboots more often than the interval still runs the job.
//     Calendars use OnCalendar= with Persistent=true. AccuracySec defaults to
//     Every/60 between 1s and 1min (so 1s under a minute), 1min for
//     calendars; Schedule.Accuracy overrides it.
//   - The target is wanted by timers.target (itself wanted by basic.target at
//     boot), so enabled timers start at boot; timers are PartOf= it, so
//     stopping it pauses them all and starting it again resumes those still
//     enabled.
//   - The services run butterctl: "snapshot VOL", "purge PATTERN VOL",
//     "replicate HOST VOL" (a verb of its own for "take a fresh snapshot and
//     send it", so that send keeps buttervolume's "send HOST SNAP"), and
//     "sync VOL HOST...". butterctl waits for the job and exits with its
//     result.
//   - Escaping. '%' is written "%%" where systemd expands specifiers
//     (Description=, OnCalendar=, ExecStart=) and '$' is written "$$" in
//     ExecStart=, where systemd expands variables; the X-Butterd-* keys escape
//     both, and Parse undoes it. Description= keeps '$' as is: systemd shows it
//     verbatim. Newlines, control characters and invalid UTF-8 are refused in
//     every field, and so are backslashes in patterns and calendars (in a
//     unit file a trailing one continues the line).
package units
