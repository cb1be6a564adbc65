package server

import (
	"fmt"
	"log/slog"
	"os/user"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
)

// authorizer decides, from the credentials the bus daemon vouches for,
// whether a caller may change anything. The bus policy says the same; this
// check holds even under a looser policy.
type authorizer struct {
	src authSources
	log *slog.Logger

	mu sync.Mutex
	// gid of dbusapi.ManageGroup when gidKnown. A group missing at start
	// (made later by an admin) is looked up again by manageGroup.
	gid       uint32
	gidKnown  bool
	gidLooked time.Time // last lookup after start; zero before the first

	// cache holds what the bus said of senders, by unique name. The bus
	// never reuses a unique name and fixes a connection's credentials when
	// it connects, so an entry stays true for as long as it is kept; it is
	// emptied when it grows past cacheMax.
	cache map[string]creds
}

// authSources are where the authorizer learns its facts: the bus, the
// group and user databases, the clock.
type authSources struct {
	// credentials answers org.freedesktop.DBus.GetConnectionCredentials.
	credentials func(sender string) (map[string]dbus.Variant, error)
	lookupGroup func(name string) (uint32, error)
	userGroups  func(uid uint32) ([]uint32, error)
	now         func() time.Time
}

// creds are what the bus said of a sender. Without busGroups the sender's
// groups are those of its uid in the user database, as dbus-daemon itself
// decides `<policy group=...>` then; they are read at each check, so a
// change in the database counts from the next call, as it does for the bus
// after it reloads.
type creds struct {
	uid       uint32
	groups    []uint32
	busGroups bool
}

const (
	cacheMax   = 4096
	groupRetry = time.Second
)

func newAuthorizer(conn *dbus.Conn, log *slog.Logger) *authorizer {
	return newAuthorizerFrom(authSources{
		credentials: func(sender string) (map[string]dbus.Variant, error) {
			var c map[string]dbus.Variant
			err := conn.BusObject().Call("org.freedesktop.DBus.GetConnectionCredentials", 0, sender).Store(&c)
			return c, err
		},
		lookupGroup: lookupGroupID,
		userGroups:  userDBGroups,
		now:         time.Now,
	}, log)
}

func newAuthorizerFrom(src authSources, log *slog.Logger) *authorizer {
	a := &authorizer{src: src, log: log}
	if gid, err := src.lookupGroup(dbusapi.ManageGroup); err == nil {
		a.gid, a.gidKnown = gid, true
	} else {
		log.Info("only root may change volumes until the group exists", "group", dbusapi.ManageGroup, "reason", err.Error())
	}
	return a
}

// allowChange returns nil for root and members of dbusapi.ManageGroup.
func (a *authorizer) allowChange(sender dbus.Sender, method string) *dbus.Error {
	c, err := a.credentials(string(sender))
	if err != nil {
		return dbus.NewError(dbusapi.ErrAccessDenied, []any{fmt.Sprintf("%s: cannot read the caller's credentials: %v", method, err)})
	}
	if c.uid == 0 {
		return nil
	}
	groups := c.groups
	if !c.busGroups {
		if groups, err = a.src.userGroups(c.uid); err != nil {
			a.log.Debug("caller's groups unknown", "uid", c.uid, "reason", err.Error())
		}
	}
	if gid, ok := a.manageGroup(); ok && slices.Contains(groups, gid) {
		return nil
	}
	return dbus.NewError(dbusapi.ErrAccessDenied, []any{fmt.Sprintf("%s changes volumes: only root and members of group %q may call it (caller uid %d)", method, dbusapi.ManageGroup, c.uid)})
}

// manageGroup returns the gid of dbusapi.ManageGroup and whether it is
// known. A group not known yet is looked up again, at most once per
// groupRetry: only calls that would be refused without it ask.
func (a *authorizer) manageGroup() (uint32, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gidKnown {
		return a.gid, true
	}
	now := a.src.now()
	if !a.gidLooked.IsZero() && now.Sub(a.gidLooked) < groupRetry {
		return 0, false
	}
	a.gidLooked = now
	gid, err := a.src.lookupGroup(dbusapi.ManageGroup)
	if err != nil {
		return 0, false
	}
	a.gid, a.gidKnown = gid, true
	a.log.Info("group found: its members may change volumes", "group", dbusapi.ManageGroup, "gid", gid)
	return gid, true
}

// credentials returns what the bus says of sender, from the cache or by
// asking the bus.
func (a *authorizer) credentials(sender string) (creds, error) {
	a.mu.Lock()
	c, ok := a.cache[sender]
	a.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err := a.ask(sender)
	if err != nil {
		return creds{}, err
	}
	a.mu.Lock()
	if a.cache == nil || len(a.cache) >= cacheMax {
		a.cache = map[string]creds{}
	}
	a.cache[sender] = c
	a.mu.Unlock()
	return c, nil
}

// ask asks the bus daemon for a sender's uid and, when it gives them
// (dbus-daemon 1.14 on Linux 4.13 and later), its groups.
func (a *authorizer) ask(sender string) (creds, error) {
	m, err := a.src.credentials(sender)
	if err != nil {
		return creds{}, err
	}
	uidV, ok := m["UnixUserID"]
	if !ok {
		return creds{}, fmt.Errorf("the bus gave no UnixUserID")
	}
	uid, ok := uidV.Value().(uint32)
	if !ok {
		return creds{}, fmt.Errorf("UnixUserID of type %s", uidV.Signature())
	}
	c := creds{uid: uid}
	if g, ok := m["UnixGroupIDs"]; ok {
		if c.groups, ok = g.Value().([]uint32); !ok {
			return creds{}, fmt.Errorf("UnixGroupIDs of type %s", g.Signature())
		}
		c.busGroups = true
	}
	return c, nil
}

// lookupGroupID returns the gid of group name.
func lookupGroupID(name string) (uint32, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("group %q has gid %q: %w", name, g.Gid, err)
	}
	return uint32(id), nil
}

// userDBGroups returns the groups of uid in the user database: its
// primary group and the groups that list it.
func userDBGroups(uid uint32) ([]uint32, error) {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return nil, err
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("groups of user %q: %w", u.Username, err)
	}
	groups := make([]uint32, 0, len(ids))
	for _, id := range ids {
		if n, err := strconv.ParseUint(id, 10, 32); err == nil {
			groups = append(groups, uint32(n))
		}
	}
	return groups, nil
}
