package main

import "testing"

func TestJournalField(t *testing.T) {
	for in, want := range map[string]string{
		"volume": "VOLUME", "snapshot": "SNAPSHOT", "job": "JOB", "safety_snapshot": "SAFETY_SNAPSHOT",
		"data-root": "DATA_ROOT", "_x": "X", "9lives": "LIVES", "message": "", "priority": "",
	} {
		if got := journalField(in); got != want {
			t.Errorf("journalField(%q) = %q, want %q", in, got, want)
		}
	}
}
