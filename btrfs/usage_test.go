package btrfs

import (
	"encoding/binary"
	"testing"
)

func le64s(v ...uint64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], x)
	}
	return b
}

func TestQgroupsCounted(t *testing.T) {
	for _, c := range []struct {
		name string
		item []byte
		want bool
	}{
		{"on", le64s(1, 7, qgroupStatusOn, 0), true},
		{"on, simple quotas", le64s(1, 7, qgroupStatusOn|1<<3, 0, 5), true},
		{"off", le64s(1, 7, 0, 0), false},
		{"rescan running", le64s(1, 7, qgroupStatusOn|qgroupStatusRescan, 4096), false},
		{"inconsistent", le64s(1, 7, qgroupStatusOn|qgroupStatusInconsistent, 0), false},
		{"no item", nil, false},
		{"short item", le64s(1, 7), false},
	} {
		if got := qgroupsCounted(c.item); got != c.want {
			t.Errorf("%s: qgroupsCounted = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseQgroupInfo(t *testing.T) {
	got := parseQgroupInfo(le64s(9, 5<<20, 5<<20, 16384, 16384))
	if want := (Usage{Referenced: 5 << 20, Exclusive: 16384, Known: true}); got != want {
		t.Errorf("parseQgroupInfo = %+v, want %+v", got, want)
	}
	for _, item := range [][]byte{nil, le64s(9, 5<<20, 5<<20, 16384)} {
		if got := parseQgroupInfo(item); got.Known {
			t.Errorf("parseQgroupInfo(%d bytes) = %+v, want unknown", len(item), got)
		}
	}
}

func TestFirstItem(t *testing.T) {
	found := func(objectID, offset uint64, typ, n uint32) *searchArgs {
		a := &searchArgs{}
		a.Key.NrItems = 1
		h := binary.NativeEndian
		h.PutUint64(a.Buf[8:], objectID)
		h.PutUint64(a.Buf[16:], offset)
		h.PutUint32(a.Buf[24:], typ)
		h.PutUint32(a.Buf[28:], n)
		copy(a.Buf[searchHeaderSize:], "0123456789")
		return a
	}
	if got := string(firstItem(found(0, 257, qgroupInfoKey, 4), qgroupInfoKey, 257)); got != "0123" {
		t.Errorf("item (0, 242, 257) = %q, want its 4 bytes", got)
	}
	for _, c := range []struct {
		name string
		args *searchArgs
	}{
		{"none found", &searchArgs{}},
		{"another qgroup", found(0, 258, qgroupInfoKey, 4)},
		{"another type", found(0, 257, qgroupInfoKey+2, 4)},
		{"another objectid", found(1, 257, qgroupInfoKey, 4)},
		{"length past the buffer", found(0, 257, qgroupInfoKey, 4096)},
	} {
		if got := firstItem(c.args, qgroupInfoKey, 257); got != nil {
			t.Errorf("%s: item %q, want none", c.name, got)
		}
	}
}
