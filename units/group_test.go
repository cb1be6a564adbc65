package units

import (
	"strings"
	"testing"
	"time"
)

// A group or project snapshot schedule runs butterctl snapshot --group or
// --project, reads back as itself, and never shares its units with the
// snapshot schedule of a volume of the same name.
func TestGroupSchedules(t *testing.T) {
	volume := Schedule{Action: ActionSnapshot, Volume: "app", Every: time.Hour}
	vt, _ := Names(volume)
	for action, flag := range map[string]string{ActionSnapshotGroup: "--group", ActionSnapshotProject: "--project"} {
		s := Schedule{Action: action, Volume: "app", Every: time.Hour}
		timer, service, err := Render(s, "/usr/bin/butterctl")
		if err != nil {
			t.Fatalf("Render(%+v): %v", s, err)
		}
		if want := "ExecStart=/usr/bin/butterctl snapshot " + flag + " app\n"; !strings.Contains(string(service), want) {
			t.Errorf("%s service lacks %q:\n%s", action, want, service)
		}
		back, err := Parse(timer)
		if err != nil || back != s {
			t.Errorf("%s timer reads back as %+v, %v", action, back, err)
		}
		if tn, _ := Names(s); tn == vt {
			t.Errorf("%s schedule of app and snapshot schedule of volume app share timer %s", action, tn)
		}
		if err := (Schedule{Action: action, Volume: "app", Arg: "x", Every: time.Hour}).Validate(); err == nil {
			t.Errorf("%s with an argument accepted", action)
		}
	}
}
