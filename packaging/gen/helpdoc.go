package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
)

// helpDoc is what `butterctl --json help` prints: the main help text and
// every verb of the command table with its flags.
type helpDoc struct {
	Help  string     `json:"help"`
	Verbs []helpVerb `json:"verbs"`
}

type helpVerb struct {
	Name     string     `json:"name"` // "volume rm"
	Synopsis string     `json:"synopsis"`
	Short    string     `json:"short"`
	Long     string     `json:"long"`
	Aliases  []string   `json:"aliases"` // other last words: "remove"
	Flags    []helpFlag `json:"flags"`
	Examples []string   `json:"examples"` // command lines
}

type helpFlag struct {
	Name  string `json:"name"` // "--dry-run", "-v"
	Arg   string `json:"arg"`  // "TIME", or "" for a switch
	Usage string `json:"usage"`
}

// readHelp runs butterctl --json help.
func readHelp(butterctl string) (*helpDoc, error) {
	cmd := exec.Command(butterctl, "--json", "help")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C"}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s --json help: %v", butterctl, err)
	}
	var doc helpDoc
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("%s --json help: %v", butterctl, err)
	}
	if len(doc.Verbs) == 0 {
		return nil, fmt.Errorf("%s --json help lists no verbs", butterctl)
	}
	return &doc, nil
}

// names are the verb's names: its own and one per alias.
func (v *helpVerb) names() []string {
	out := []string{v.Name}
	words := strings.Fields(v.Name)
	for _, a := range v.Aliases {
		out = append(out, strings.Join(append(words[:len(words)-1:len(words)-1], a), " "))
	}
	return out
}

var choice = regexp.MustCompile(`^\[?([a-z]+(?:\|[a-z]+)+)\]?$`)

// operands reads the synopsis after the verb's name and flags: the words
// it may be followed by (choices such as [list|pause|resume]) and what
// its first operand names: "volume", "snapshot", "file" or "".
func (v *helpVerb) operands() (choices []string, kind string) {
	takesValue := map[string]bool{}
	for _, f := range v.Flags {
		takesValue[f.Name] = f.Arg != ""
	}
	words := strings.Fields(strings.TrimPrefix(v.Synopsis, v.Name))
	for i := 0; i < len(words); i++ {
		w := strings.Trim(words[i], "[]")
		if strings.HasPrefix(w, "-") {
			if takesValue[strings.SplitN(w, "|", 2)[0]] {
				i++ // the flag's value
			}
			continue
		}
		if m := choice.FindStringSubmatch(words[i]); m != nil {
			choices = append(choices, strings.Split(m[1], "|")...)
			continue
		}
		if kind == "" {
			switch {
			case strings.Contains(w, "SNAP"):
				kind = "snapshot"
			case strings.Contains(w, "VOL") || w == "NAME" && !strings.HasSuffix(v.Name, "create"):
				kind = "volume"
			case strings.Contains(w, "FILE"):
				kind = "file"
			}
		}
	}
	return choices, kind
}

// globalFlags reads the flags of the "Global flags" section of the main
// help: "  --json  ..." and "  -h, --help  ...".
func globalFlags(text string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(text, "\n") {
		if heading.MatchString(l) {
			in = strings.HasPrefix(l, "Global flags")
			continue
		}
		m := item.FindStringSubmatch(l)
		if !in || m == nil {
			continue
		}
		for _, w := range strings.Split(m[1], ",") {
			if w = strings.TrimSpace(w); strings.HasPrefix(w, "-") {
				out = append(out, strings.Fields(w)[0])
			}
		}
	}
	return out
}
