package main

import "flag"

// helpDoc is `butterctl --json help`: the main help text and every verb of
// the command table with its flags, for tools (packaging/gen makes the man
// page and the shell completions from it).
type helpDoc struct {
	Help  string     `json:"help"`
	Verbs []helpVerb `json:"verbs"`
}

type helpVerb struct {
	Name     string     `json:"name"`     // the words after butterctl: "volume rm"
	Synopsis string     `json:"synopsis"` // name and arguments
	Short    string     `json:"short"`
	Long     string     `json:"long,omitempty"`
	Aliases  []string   `json:"aliases,omitempty"` // other last words
	Flags    []helpFlag `json:"flags"`
	Examples []string   `json:"examples"` // command lines, each may end in "  # comment"
}

type helpFlag struct {
	Name  string `json:"name"`          // with its dashes: "--dry-run", "-v"
	Arg   string `json:"arg,omitempty"` // the value it takes: "TIME"
	Usage string `json:"usage"`
}

func (a *app) helpJSON() error {
	doc := helpDoc{Help: mainUsage(), Verbs: []helpVerb{}}
	for _, c := range commandTable() {
		v := helpVerb{Name: c.name, Synopsis: c.synopsis(), Short: c.short, Long: c.long, Aliases: c.aliases, Flags: []helpFlag{}, Examples: c.examples}
		newFlagSet(c, c.new(a)).VisitAll(func(f *flag.Flag) {
			arg, usage := flag.UnquoteUsage(f)
			v.Flags = append(v.Flags, helpFlag{Name: dashes(f.Name) + f.Name, Arg: arg, Usage: usage})
		})
		doc.Verbs = append(doc.Verbs, v)
	}
	return a.printJSON(doc)
}
