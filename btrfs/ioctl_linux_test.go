package btrfs

import (
	"testing"
	"unsafe"
)

// The kernel's figures come from a C program built against <linux/btrfs.h>
// on amd64 (sizeof, offsetof and the BTRFS_IOC_* values).
func TestStructSizes(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("figures are for 64-bit targets")
	}
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"btrfs_ioctl_vol_args", unsafe.Sizeof(volArgs{}), 4096},
		{"btrfs_ioctl_vol_args_v2", unsafe.Sizeof(volArgsV2{}), 4096},
		{"btrfs_ioctl_vol_args_v2.name", unsafe.Offsetof(volArgsV2{}.Name), 56},
		{"btrfs_ioctl_send_args", unsafe.Sizeof(sendArgs{}), 72},
		{"btrfs_ioctl_timespec", unsafe.Sizeof(ioctlTimespec{}), 16},
		{"btrfs_ioctl_get_subvol_info_args", unsafe.Sizeof(subvolInfoArgs{}), 504},
		{"btrfs_ioctl_get_subvol_info_args.uuid", unsafe.Offsetof(subvolInfoArgs{}.UUID), 296},
		{"btrfs_ioctl_get_subvol_info_args.otime", unsafe.Offsetof(subvolInfoArgs{}.OTime), 392},
		{"btrfs_ioctl_get_subvol_rootref_args", unsafe.Sizeof(rootrefArgs{}), 4096},
		{"btrfs_ioctl_get_subvol_rootref_args.num_items", unsafe.Offsetof(rootrefArgs{}.NumItems), 4088},
		{"btrfs_ioctl_ino_lookup_user_args", unsafe.Sizeof(inoLookupUserArgs{}), 4096},
		{"btrfs_ioctl_search_key", unsafe.Sizeof(searchKey{}), 104},
		{"btrfs_ioctl_search_key.nr_items", unsafe.Offsetof(searchKey{}.NrItems), 64},
		{"btrfs_ioctl_search_args", unsafe.Sizeof(searchArgs{}), 4096},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d bytes, kernel has %d", c.name, c.got, c.want)
		}
	}
}

func TestIoctlNumbers(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("figures are for 64-bit targets")
	}
	for _, c := range []struct {
		got, want uintptr
	}{
		{iocSnapDestroy, 0x5000940f},
		{iocSnapCreateV2, 0x50009417},
		{iocTreeSearch, 0xd0009411},
		{iocSubvolGetflags, 0x80089419},
		{iocSubvolSetflags, 0x4008941a},
		{iocGetSubvolInfo, 0x81f8943c},
		{iocGetSubvolRootref, 0xd000943d},
		{iocInoLookupUser, 0xd000943e},
		{iocFsGetflags, 0x80086601},
		{iocFsSetflags, 0x40086602},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, kernel has %#x", ioctlName(c.want), c.got, c.want)
		}
	}
}

func TestCstring(t *testing.T) {
	if got := cstring([]byte("ab/\x00cd")); got != "ab/" {
		t.Errorf("cstring = %q", got)
	}
	if got := cstring([]byte("abc")); got != "abc" {
		t.Errorf("cstring without NUL = %q", got)
	}
}
