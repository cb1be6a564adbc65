package server

import (
	"bufio"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
)

// authorizer decides, from the credentials the bus daemon vouches for,
// whether a caller may change anything. The bus policy says the same; this
// check holds even under a looser policy.
type authorizer struct {
	conn *dbus.Conn
	// groupID of dbusapi.ManageGroup, or -1 when the group does not exist.
	groupID int

	// cache holds the credentials of senders by unique name. The bus never
	// reuses a unique name and fixes a connection's credentials when it
	// connects, so an entry stays true for as long as it is kept; it is
	// emptied when it grows past cacheMax.
	mu    sync.Mutex
	cache map[string]creds
}

type creds struct {
	uid    uint32
	groups []uint32
}

const cacheMax = 4096

func newAuthorizer(conn *dbus.Conn) *authorizer {
	a := &authorizer{conn: conn, groupID: -1}
	if g, err := user.LookupGroup(dbusapi.ManageGroup); err == nil {
		if id, err := strconv.Atoi(g.Gid); err == nil {
			a.groupID = id
		}
	}
	return a
}

// allowChange returns nil for root and members of dbusapi.ManageGroup.
func (a *authorizer) allowChange(sender dbus.Sender, method string) *dbus.Error {
	uid, groups, err := a.credentials(string(sender))
	if err != nil {
		return dbus.NewError(dbusapi.ErrAccessDenied, []any{fmt.Sprintf("%s: cannot read the caller's credentials: %v", method, err)})
	}
	if uid == 0 {
		return nil
	}
	for _, g := range groups {
		if a.groupID >= 0 && g == uint32(a.groupID) {
			return nil
		}
	}
	return dbus.NewError(dbusapi.ErrAccessDenied, []any{fmt.Sprintf("%s changes volumes: only root and members of group %q may call it (caller uid %d)", method, dbusapi.ManageGroup, uid)})
}

// credentials asks the bus daemon for the sender's uid and groups. Buses
// that do not give UnixGroupIDs (dbus-daemon before 1.15) give the process
// id; the groups are then read from /proc for that process, whose uid must
// match the one the bus gave.
func (a *authorizer) credentials(sender string) (uint32, []uint32, error) {
	a.mu.Lock()
	c, ok := a.cache[sender]
	a.mu.Unlock()
	if ok {
		return c.uid, c.groups, nil
	}
	uid, groups, complete, err := a.ask(sender)
	if err != nil || !complete {
		return uid, groups, err
	}
	a.mu.Lock()
	if a.cache == nil || len(a.cache) >= cacheMax {
		a.cache = map[string]creds{}
	}
	a.cache[sender] = creds{uid, groups}
	a.mu.Unlock()
	return uid, groups, nil
}

// ask asks the bus daemon for a sender's credentials. complete is false
// when its groups could not be read (the caller then has none, and the
// answer is not kept).
func (a *authorizer) ask(sender string) (uid uint32, groups []uint32, complete bool, err error) {
	var creds map[string]dbus.Variant
	err = a.conn.BusObject().Call("org.freedesktop.DBus.GetConnectionCredentials", 0, sender).Store(&creds)
	if err != nil {
		return 0, nil, false, err
	}
	uidV, ok := creds["UnixUserID"]
	if !ok {
		return 0, nil, false, fmt.Errorf("the bus gave no UnixUserID")
	}
	uid, ok = uidV.Value().(uint32)
	if !ok {
		return 0, nil, false, fmt.Errorf("UnixUserID of type %s", uidV.Signature())
	}
	if g, ok := creds["UnixGroupIDs"]; ok {
		groups, _ = g.Value().([]uint32)
		return uid, groups, true, nil
	}
	pidV, ok := creds["ProcessID"]
	if !ok {
		return uid, nil, true, nil
	}
	pid, _ := pidV.Value().(uint32)
	groups, err = procGroups(pid, uid)
	if err != nil {
		return uid, nil, false, nil // no group rights this time; root still passes
	}
	return uid, groups, true, nil
}

// procGroups reads the real gid and supplementary groups of a process whose
// real uid must be uid.
func procGroups(pid, uid uint32) ([]uint32, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var groups []uint32
	uidOK := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(val)
		switch key {
		case "Uid":
			uidOK = len(fields) > 0 && fields[0] == strconv.FormatUint(uint64(uid), 10)
		case "Gid", "Groups":
			for i, f := range fields {
				if key == "Gid" && i > 0 {
					break
				}
				if n, err := strconv.ParseUint(f, 10, 32); err == nil {
					groups = append(groups, uint32(n))
				}
			}
		}
	}
	if !uidOK {
		return nil, fmt.Errorf("process %d no longer has uid %d", pid, uid)
	}
	return groups, sc.Err()
}
