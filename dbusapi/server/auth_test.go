package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/user"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"butterd/dbusapi"
)

// fakeHost is a bus, a group database and a user database for the
// authorizer, counting what it is asked.
type fakeHost struct {
	bus      map[string]map[string]dbus.Variant // by unique name
	gid      uint32                             // of group butterd, when groupOK
	groupOK  bool
	members  map[uint32][]uint32 // user database: uid -> groups
	now      time.Time
	busAsked map[string]int
	lookups  int
}

func newFakeHost() *fakeHost {
	return &fakeHost{bus: map[string]map[string]dbus.Variant{}, members: map[uint32][]uint32{}, busAsked: map[string]int{}, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// connect puts a connection on the bus; groups nil: the bus gives none.
func (h *fakeHost) connect(name string, uid uint32, groups []uint32) {
	c := map[string]dbus.Variant{"UnixUserID": dbus.MakeVariant(uid), "ProcessID": dbus.MakeVariant(uint32(4242))}
	if groups != nil {
		c["UnixGroupIDs"] = dbus.MakeVariant(groups)
	}
	h.bus[name] = c
}

func (h *fakeHost) authorizer() *authorizer {
	return newAuthorizerFrom(authSources{
		credentials: func(sender string) (map[string]dbus.Variant, error) {
			h.busAsked[sender]++
			c, ok := h.bus[sender]
			if !ok {
				return nil, dbus.NewError("org.freedesktop.DBus.Error.NameHasNoOwner", []any{"Could not get credentials of unknown name " + sender})
			}
			return c, nil
		},
		lookupGroup: func(name string) (uint32, error) {
			h.lookups++
			if name != dbusapi.ManageGroup || !h.groupOK {
				return 0, user.UnknownGroupError(name)
			}
			return h.gid, nil
		},
		userGroups: func(uid uint32) ([]uint32, error) {
			g, ok := h.members[uid]
			if !ok {
				return nil, user.UnknownUserIdError(int(uid))
			}
			return g, nil
		},
		now: func() time.Time { return h.now },
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

const deniedFmt = ` changes volumes: only root and members of group "butterd" may call it (caller uid `

// allowed reports whether sender may call CreateVolume; a refusal must
// say why.
func allowed(t *testing.T, a *authorizer, sender string) bool {
	t.Helper()
	err := a.allowChange(dbus.Sender(sender), "CreateVolume")
	if err == nil {
		return true
	}
	if err.Name != dbusapi.ErrAccessDenied || len(err.Body) != 1 {
		t.Fatalf("refusal of %s: %v %v", sender, err.Name, err.Body)
	}
	if msg, _ := err.Body[0].(string); !strings.HasPrefix(msg, "CreateVolume") {
		t.Fatalf("refusal of %s says %q", sender, msg)
	}
	return false
}

func TestAuthGroupsFromBus(t *testing.T) {
	h := newFakeHost()
	h.gid, h.groupOK = 990, true
	h.connect(":1.1", 0, []uint32{0})
	h.connect(":1.2", 1000, []uint32{1000, 990})
	h.connect(":1.3", 1001, []uint32{1001})
	h.connect(":1.4", 1002, []uint32{})   // no groups at all
	h.members[1001] = []uint32{1001, 990} // the database is not asked
	a := h.authorizer()
	for sender, want := range map[string]bool{":1.1": true, ":1.2": true, ":1.3": false, ":1.4": false} {
		if got := allowed(t, a, sender); got != want {
			t.Errorf("%s allowed = %v, want %v", sender, got, want)
		}
	}
	err := a.allowChange(":1.3", "RemoveVolume")
	if want := "RemoveVolume" + deniedFmt + "1001)"; err == nil || err.Body[0] != want {
		t.Errorf("refusal of uid 1001: %v, want %q", err, want)
	}
}

// Without UnixGroupIDs (dbus-daemon before 1.14, or a kernel without
// SO_PEERGROUPS), the groups come from the user database, read at each
// check; the bus is asked once per connection.
func TestAuthGroupsFromUserDatabase(t *testing.T) {
	h := newFakeHost()
	h.gid, h.groupOK = 990, true
	h.connect(":1.7", 1000, nil)
	h.connect(":1.8", 1001, nil)
	h.connect(":1.9", 1002, nil) // no user of that uid
	h.members[1000] = []uint32{1000, 990}
	h.members[1001] = []uint32{1001}
	a := h.authorizer()
	if !allowed(t, a, ":1.7") {
		t.Error("member of butterd in the user database refused")
	}
	if allowed(t, a, ":1.8") {
		t.Error("non-member allowed")
	}
	if allowed(t, a, ":1.9") {
		t.Error("uid without a user allowed")
	}
	// The admin changes the database: the next call follows it.
	h.members[1000] = []uint32{1000}
	h.members[1001] = []uint32{1001, 990}
	if allowed(t, a, ":1.7") {
		t.Error("removed from butterd, still allowed")
	}
	if !allowed(t, a, ":1.8") {
		t.Error("added to butterd, still refused")
	}
	for _, s := range []string{":1.7", ":1.8", ":1.9"} {
		if h.busAsked[s] != 1 {
			t.Errorf("the bus was asked %d times about %s, want once", h.busAsked[s], s)
		}
	}
}

// Credentials are kept by unique name: a new connection of another user is
// asked about, never answered from another name's entry; an unknown name
// is refused and asked about again next time.
func TestAuthCacheByUniqueName(t *testing.T) {
	h := newFakeHost()
	h.gid, h.groupOK = 990, true
	h.connect(":1.1", 1000, []uint32{990})
	a := h.authorizer()
	if !allowed(t, a, ":1.1") || !allowed(t, a, ":1.1") {
		t.Fatal("member refused")
	}
	if allowed(t, a, ":1.2") {
		t.Error("unknown name allowed")
	}
	h.connect(":1.2", 1001, []uint32{1001})
	if allowed(t, a, ":1.2") {
		t.Error("non-member :1.2 allowed")
	}
	if h.busAsked[":1.1"] != 1 || h.busAsked[":1.2"] != 2 {
		t.Errorf("bus asked %v, want :1.1 once and :1.2 twice", h.busAsked)
	}
	err := a.allowChange(":1.3", "CreateVolume")
	if err == nil || !strings.Contains(err.Body[0].(string), "cannot read the caller's credentials") {
		t.Errorf("unknown name: %v", err)
	}
	// Past cacheMax entries the cache starts again, and stays right.
	for i := range cacheMax + 10 {
		name := fmt.Sprintf(":2.%d", i)
		h.connect(name, 1001, []uint32{1001})
		allowed(t, a, name)
	}
	if len(a.cache) > cacheMax {
		t.Errorf("cache holds %d entries, max %d", len(a.cache), cacheMax)
	}
	if !allowed(t, a, ":1.1") {
		t.Error("member refused after the cache started again")
	}
}

// A group made after butterd started grants its members rights from the
// first call that needs it; while it is missing, refusals look it up at
// most once per groupRetry.
func TestAuthGroupMadeLater(t *testing.T) {
	h := newFakeHost()
	h.connect(":1.1", 1000, []uint32{1000, 990})
	h.connect(":1.2", 0, []uint32{0})
	a := h.authorizer()
	start := h.lookups
	if !allowed(t, a, ":1.2") {
		t.Error("root refused while the group is missing")
	}
	if h.lookups != start {
		t.Errorf("root's call looked the group up %d times", h.lookups-start)
	}
	if allowed(t, a, ":1.1") || allowed(t, a, ":1.1") {
		t.Error("allowed while the group is missing")
	}
	if h.lookups != start+1 {
		t.Errorf("two refusals within %v looked the group up %d times, want once", groupRetry, h.lookups-start)
	}
	h.now = h.now.Add(groupRetry)
	h.gid, h.groupOK = 990, true
	if !allowed(t, a, ":1.1") {
		t.Error("member refused after the group was made")
	}
	before := h.lookups
	allowed(t, a, ":1.1")
	if h.lookups != before {
		t.Error("a known group was looked up again")
	}

	// Made before the first refusal after start: found at once.
	h = newFakeHost()
	h.connect(":1.1", 1000, nil)
	h.members[1000] = []uint32{1000, 990}
	a = h.authorizer()
	h.gid, h.groupOK = 990, true
	if !allowed(t, a, ":1.1") {
		t.Error("member refused right after the group was made")
	}
}

// The user database of this machine: root's groups hold its primary
// group 0.
func TestUserDBGroups(t *testing.T) {
	groups, err := userDBGroups(0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(groups, 0) {
		t.Errorf("groups of root = %v, want gid 0 among them", groups)
	}
	var unknown user.UnknownUserIdError
	if _, err := userDBGroups(4000000001); !errors.As(err, &unknown) {
		t.Errorf("groups of a uid without a user: %v", err)
	}
}
