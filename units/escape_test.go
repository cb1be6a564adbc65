package units

import (
	"os/exec"
	"strings"
	"testing"
)

var escapeCases = []string{
	"snapshot/pgdata",
	"snapshot/pg-data",
	"replicate/web.data_01/backup@nas.example.com:2222",
	"synchronize/v1/host-a,root@[fe80::1]:22",
	".hidden", "..", "a.", "x/.y", "/leading", "trailing/", "a//b",
	"with space", "tab\there", "back\\slash", "dollar$ percent%", `quote"'`,
	"é ü 日本", "-dash", "ALL:Colons:_under_score",
	string([]byte{0x01, 0x7f, 0x80, 0xff}),
}

func TestEscapeExamples(t *testing.T) {
	for in, want := range map[string]string{
		"snapshot/pg-data":  `snapshot-pg\x2ddata`,
		".x":                `\x2ex`,
		"a.b":               "a.b",
		"u@h:22":            `u\x40h:22`,
		"é":                 `\xc3\xa9`,
		"a b":               `a\x20b`,
		"synchronize/v/a,b": `synchronize-v-a\x2cb`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	for _, in := range escapeCases {
		out, err := Unescape(Escape(in))
		if err != nil || out != in {
			t.Errorf("Unescape(Escape(%q)) = %q, %v", in, out, err)
		}
	}
	for _, bad := range []string{`\`, `\x`, `\x2`, `\y20`, `\xzz`, `a\x4`} {
		if _, err := Unescape(bad); err == nil {
			t.Errorf("Unescape(%q) accepted", bad)
		}
	}
}

// TestEscapeMatchesSystemd compares Escape and Unescape with systemd-escape.
func TestEscapeMatchesSystemd(t *testing.T) {
	tool := needTool(t, "systemd-escape", "systemd")
	cases := append([]string{}, escapeCases...)
	for c := 1; c < 256; c++ { // every byte but NUL, which no argument holds
		cases = append(cases, "k/"+string([]byte{byte(c)})+"/z")
	}
	cases = append(cases, strings.Repeat("-.", 48), ".a.b")
	// One run for all: escaped names hold no spaces, so the output splits.
	out, err := exec.Command(tool, append([]string{"--"}, cases...)...).Output()
	if err != nil {
		t.Fatalf("systemd-escape: %v", err)
	}
	want := strings.Fields(string(out))
	if len(want) != len(cases) {
		t.Fatalf("systemd-escape printed %d names for %d strings", len(want), len(cases))
	}
	for i, in := range cases {
		if got := Escape(in); got != want[i] {
			t.Errorf("Escape(%q) = %q, systemd-escape says %q", in, got, want[i])
		}
	}
	// systemd-escape -u joins its answers with spaces: compare the whole.
	back, err := exec.Command(tool, append([]string{"-u", "--"}, want...)...).Output()
	if err != nil {
		t.Fatalf("systemd-escape -u: %v", err)
	}
	var ours []string
	for _, w := range want {
		u, err := Unescape(w)
		if err != nil {
			t.Fatalf("Unescape(%q): %v", w, err)
		}
		ours = append(ours, u)
	}
	if got, want := strings.Join(ours, " "), strings.TrimSuffix(string(back), "\n"); got != want {
		t.Errorf("Unescape disagrees with systemd-escape -u:\n ours   %q\n theirs %q", got, want)
	}
}
