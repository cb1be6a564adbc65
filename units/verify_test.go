package units

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// verifyUnits writes units (name → content) into a temporary directory with
// the target and runs systemd-analyze verify on them. It returns the lines
// of its output that speak of these units (with the exit status when not 0:
// many complaints leave it at 0).
func verifyUnits(t *testing.T, dir string, units map[string][]byte) []string {
	t.Helper()
	tool := needTool(t, "systemd-analyze", "systemd")
	units[TargetName] = RenderTarget()
	args := []string{"verify", "--man=no"}
	n := 0
	for name, content := range units {
		// verify reads FILE:NAME as "FILE, loaded as unit NAME", so unit
		// names with ':' go through files named otherwise.
		n++
		path := filepath.Join(dir, fmt.Sprintf("unit%d", n))
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, path+":"+name)
	}
	cmd := exec.Command(tool, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ours []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l == "" {
			continue
		}
		if strings.Contains(l, dir) || strings.Contains(l, "butterd") {
			ours = append(ours, l)
		} else {
			t.Logf("systemd-analyze (not about these units): %s", l)
		}
	}
	if err != nil {
		ours = append(ours, "systemd-analyze verify: "+err.Error())
	}
	return ours
}

// fakeButterctl is an executable script in dir, for ExecStart to point at.
func fakeButterctl(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "bin", "butterctl")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestVerifyGolden checks the golden units with systemd-analyze verify, under
// their unit names, ExecStart pointing at an executable stand-in.
func TestVerifyGolden(t *testing.T) {
	dir := t.TempDir()
	butterctl := fakeButterctl(t, dir)
	units := map[string][]byte{}
	for _, c := range goldenCases {
		tn, sn := Names(c.s)
		timer, err := os.ReadFile(filepath.Join("testdata", c.name+".timer"))
		if err != nil {
			t.Fatal(err)
		}
		service, err := os.ReadFile(filepath.Join("testdata", c.name+".service"))
		if err != nil {
			t.Fatal(err)
		}
		units[tn] = timer
		units[sn] = bytes.ReplaceAll(service, []byte("="+DefaultButterctl+" "), []byte("="+butterctl+" "))
	}
	target, err := os.ReadFile(filepath.Join("testdata", TargetName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(target, RenderTarget()) {
		t.Fatalf("testdata/%s is stale: run go test ./units/ -run Golden -update", TargetName)
	}
	if complaints := verifyUnits(t, dir, units); len(complaints) > 0 {
		t.Errorf("systemd-analyze verify complains:\n%s", strings.Join(complaints, "\n"))
	}
}

// TestVerifyOdd checks units of odd schedules: long and hashed names, quotes,
// '%' and '$' in values, fine accuracies, calendar ranges.
func TestVerifyOdd(t *testing.T) {
	dir := t.TempDir()
	butterctl := fakeButterctl(t, dir)
	long := "v" + strings.Repeat("-._", 31) + "zz" // 96 characters
	units := map[string][]byte{}
	for _, s := range []Schedule{
		{Action: ActionSnapshot, Volume: long, Every: 3 * time.Second, Accuracy: time.Millisecond},
		{Action: ActionSnapshot, Volume: strings.Repeat("A", 96), OnCalendar: "Mon..Fri *-*-* 02:30:00"},
		{Action: ActionPurge, Volume: long, Arg: `1%n:$HOME "q" 'x' ; ;`, OnCalendar: "weekly"},
		{Action: ActionPurge, Volume: "v1", Arg: "1h:1d:%i:$$:${X}", Every: 90 * time.Minute},
		{Action: ActionReplicate, Volume: long, Arg: "backup_user@" + strings.Repeat("h", 63) + "." + strings.Repeat("d", 63) + ".example.com:65535", Every: time.Hour},
		{Action: ActionSynchronize, Volume: long, Arg: "a.b,c@d:1,[::1]:22,[fe80::1]", Every: 24 * time.Hour},
	} {
		timer, service, err := Render(s, butterctl)
		if err != nil {
			t.Fatalf("Render(%+v): %v", s, err)
		}
		tn, sn := Names(s)
		units[tn], units[sn] = timer, service
	}
	if complaints := verifyUnits(t, dir, units); len(complaints) > 0 {
		t.Errorf("systemd-analyze verify complains:\n%s", strings.Join(complaints, "\n"))
	}
}

// TestVerifyCatches makes sure verifyUnits sees a complaint that does not
// change systemd-analyze's exit status.
func TestVerifyCatches(t *testing.T) {
	dir := t.TempDir()
	timer, service, err := Render(Schedule{Action: ActionSnapshot, Volume: "v1", OnCalendar: "daily"}, fakeButterctl(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	timer = bytes.Replace(timer, []byte("\nOnCalendar=daily"), []byte("\nOnCalendar=%%bogus"), 1)
	tn, sn := Names(Schedule{Action: ActionSnapshot, Volume: "v1"})
	if complaints := verifyUnits(t, dir, map[string][]byte{tn: timer, sn: service}); len(complaints) == 0 {
		t.Errorf("systemd-analyze verify accepted OnCalendar=%%%%bogus")
	}
}
