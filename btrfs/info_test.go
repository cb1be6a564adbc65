package btrfs

import "testing"

func TestFormatUUID(t *testing.T) {
	u := [16]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10}
	if got, want := formatUUID(u), "01234567-89ab-cdef-fedc-ba9876543210"; got != want {
		t.Errorf("formatUUID = %q, want %q", got, want)
	}
	if got := formatUUID([16]byte{}); got != "" {
		t.Errorf("formatUUID(zero) = %q, want \"\"", got)
	}
}
