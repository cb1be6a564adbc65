package tests

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"butterd/btrfs"
	"butterd/tests/testenv"

	"golang.org/x/sys/unix"
)

// Benchmarks of the btrfs package's calls, each on a fresh 1 GiB
// filesystem, to compare with the bare ioctls (SANDBOX.md: create 26 µs,
// read-only snapshot 1.7 ms, delete 47 µs).

// batch is how many subvolumes a benchmark handles between pauses: a 1 GiB
// filesystem holds only about 29,000 empty ones (a 16 KiB root node each,
// twice with DUP metadata), and deleted ones give their space back only
// once the cleaner has dropped them. Between batches, with the timer
// stopped, they are deleted (or created) and the filesystem settles.
const batch = 1000

func BenchmarkCreate(b *testing.B) {
	mnt := testenv.BtrfsSize(b, "1G")
	b.ResetTimer()
	for lo := 0; lo < b.N; lo += batch {
		hi := min(lo+batch, b.N)
		for i := lo; i < hi; i++ {
			if err := btrfs.Create(benchPath(mnt, i)); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		benchDelete(b, mnt, lo, hi)
		b.StartTimer()
	}
}

func BenchmarkSnapshotRO(b *testing.B) {
	mnt := testenv.BtrfsSize(b, "1G")
	src := filepath.Join(mnt, "src")
	if err := btrfs.Create(src); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for lo := 0; lo < b.N; lo += batch {
		hi := min(lo+batch, b.N)
		for i := lo; i < hi; i++ {
			if err := btrfs.Snapshot(src, benchPath(mnt, i), true); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		benchDelete(b, mnt, lo, hi)
		b.StartTimer()
	}
}

func BenchmarkDelete(b *testing.B) {
	mnt := testenv.BtrfsSize(b, "1G")
	b.ResetTimer()
	for lo := 0; lo < b.N; lo += batch {
		hi := min(lo+batch, b.N)
		b.StopTimer()
		for i := lo; i < hi; i++ {
			if err := btrfs.Create(benchPath(mnt, i)); err != nil {
				b.Fatal(err)
			}
		}
		benchSync(b, mnt)
		b.StartTimer()
		for i := lo; i < hi; i++ {
			if err := btrfs.Delete(benchPath(mnt, i)); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		benchSettle(b, mnt, hi)
		b.StartTimer()
	}
}

func benchPath(mnt string, i int) string {
	return filepath.Join(mnt, strconv.Itoa(i))
}

// benchDelete deletes the subvolumes lo..hi-1 and lets the filesystem settle.
func benchDelete(b *testing.B, mnt string, lo, hi int) {
	for i := lo; i < hi; i++ {
		if err := btrfs.Delete(benchPath(mnt, i)); err != nil {
			b.Fatal(err)
		}
	}
	benchSettle(b, mnt, hi)
}

// benchSettle commits the filesystem and, every ten batches, waits for the
// cleaner to drop the deleted subvolumes (btrfs subvolume sync polls once a
// second) and commits again, so that their space comes back.
func benchSettle(b *testing.B, mnt string, done int) {
	benchSync(b, mnt)
	if done%(10*batch) != 0 {
		return
	}
	if out, err := exec.Command("btrfs", "subvolume", "sync", mnt).CombinedOutput(); err != nil {
		b.Fatalf("btrfs subvolume sync: %v: %s", err, out)
	}
	benchSync(b, mnt)
}

// benchSync commits the filesystem at mnt (syncfs, not the whole machine).
func benchSync(b *testing.B, mnt string) {
	fd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		b.Fatal(err)
	}
}
