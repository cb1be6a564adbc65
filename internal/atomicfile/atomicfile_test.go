package atomicfile

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	// What Write leaves when killed between create and rename.
	f, err := os.CreateTemp(dir, ".jobs.json.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	stale := filepath.Base(f.Name())
	keep := []string{
		"jobs.json",
		".other.json.tmp-123",   // not a file of ours
		".jobs.json.tmp-12x",    // not Write's pattern
		".jobs.json.tmp-",       // no digits
		".tmp-123",              // no name
		"jobs.json.tmp-123",     // no dot
		".jobs.json.tmp-1.json", // another name
	}
	for _, name := range keep {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".jobs.json.tmp-7"), 0o700); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveStale(dir, func(name string) bool { return name == "jobs.json" })
	if err != nil || !slices.Equal(removed, []string{filepath.Join(dir, stale)}) {
		t.Fatalf("removed %v, %v; want only %s", removed, err, stale)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := append(slices.Clone(keep), ".jobs.json.tmp-7") // a directory stays
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}
	if removed, err := RemoveStale(filepath.Join(dir, "missing"), func(string) bool { return true }); err != nil || removed != nil {
		t.Fatalf("missing directory: %v %v", removed, err)
	}
}
