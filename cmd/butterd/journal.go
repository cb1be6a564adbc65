package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
)

// journalHandler sends each record to journald with its attributes as
// structured fields (volume=pg → VOLUME=pg, subsystem → SUBSYSTEM), so that
// `journalctl VOLUME=pg` finds everything about a volume. The message also
// carries the attributes as text, as the plain handler writes them.
type journalHandler struct {
	level slog.Leveler
	attrs []slog.Attr
	group string
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *journalHandler) Handle(_ context.Context, r slog.Record) error {
	fields := map[string]string{}
	var text strings.Builder
	text.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		key := h.group + a.Key
		val := a.Value.Resolve().String()
		fmt.Fprintf(&text, " %s=%q", key, val)
		if name := journalField(key); name != "" {
			fields[name] = val
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	return journal.Send(text.String(), journalPriority(r.Level), fields)
}

func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	for _, a := range attrs {
		a.Key = h.group + a.Key
		c.attrs = append(append([]slog.Attr(nil), c.attrs...), a)
	}
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.group += name + "_"
	return &c
}

// journalField turns an attribute key into a journal field name: upper
// case letters, digits and underscores, not starting with an underscore.
func journalField(key string) string {
	var b strings.Builder
	for _, r := range key {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9' && b.Len() > 0, r == '_' && b.Len() > 0:
			b.WriteRune(r)
		default:
			if b.Len() > 0 {
				b.WriteByte('_')
			}
		}
	}
	name := b.String()
	switch name {
	case "MESSAGE", "PRIORITY", "":
		return "" // journald's own fields
	}
	return name
}

func journalPriority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}
