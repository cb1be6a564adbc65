package testenv

import (
	"bufio"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// makeLoopDevices makes the loop device nodes udev would make on a host:
// /dev/loop-control and /dev/loop0 to /dev/loop255.
func (m *Machine) makeLoopDevices() {
	t := m.t
	t.Helper()
	var fi unix.Stat_t
	if err := unix.Stat("/dev/loop-control", &fi); err != nil {
		Need(t, false, "needs /dev/loop-control")
	}
	if err := unix.Mknod(m.Path("/dev/loop-control"), unix.S_IFCHR|0o600, int(fi.Rdev)); err != nil {
		t.Fatalf("mknod /dev/loop-control in container %s: %v", m.Name, err)
	}
	// With max_part, each loop device owns a range of minors for its
	// partitions.
	shift := 0
	if b, err := os.ReadFile("/sys/module/loop/parameters/max_part"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
			shift = bits.Len(uint(n))
		}
	}
	for i := 0; i < 256; i++ {
		dev := unix.Mkdev(7, uint32(i<<shift))
		if err := unix.Mknod(m.Path(fmt.Sprintf("/dev/loop%d", i)), unix.S_IFBLK|0o660, int(dev)); err != nil {
			t.Fatalf("mknod /dev/loop%d in container %s: %v", i, m.Name, err)
		}
	}
}

// setUpDocker gives docker.service a drop-in whose dockerd works in the
// container and makes the cgroup v1 controllers writable there (nspawn
// mounts them read-only): runc puts each container in a cgroup under
// /NAME of every controller, relative to the container's own cgroups.
func (m *Machine) setUpDocker() {
	t := m.t
	t.Helper()
	Command(t, "dockerd")
	_, err := os.Stat(dockerClient)
	Need(t, err == nil, "needs "+dockerClient+" (package docker.io)")
	dropIn := "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock" +
		" --iptables=false --ip-masq=false --ip-forward=false --bridge=none --userland-proxy=false" +
		" --storage-driver=vfs --cgroup-parent=/" + m.Name + "\n"
	m.WriteFile("/etc/systemd/system/docker.service.d/test.conf", []byte(dropIn), 0o644)
	m.MustRun("systemctl", "daemon-reload")

	// The container's root in each v1 controller is nspawn's cgroup there.
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", m.Pid))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || parts[1] == "" || strings.HasPrefix(parts[1], "name=") {
			continue
		}
		dir := filepath.Join("/sys/fs/cgroup", parts[1])
		if _, err := os.Stat(dir); err == nil {
			m.dockerCgroups = append(m.dockerCgroups, filepath.Join(dir, parts[2], m.Name))
		}
	}
	f.Close()
	for _, mp := range readOnlyCgroupMounts(m.Leader) {
		m.MustRun("mount", "-o", "remount,bind,rw", mp)
	}
}

// readOnlyCgroupMounts lists the read-only cgroup v1 mounts of pid's mount
// namespace.
func readOnlyCgroupMounts(pid int) []string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		before, after, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(before), strings.Fields(after)
		if !ok || len(f) < 6 || len(g) < 1 || g[0] != "cgroup" {
			continue
		}
		for _, o := range strings.Split(f[5], ",") {
			if o == "ro" {
				out = append(out, unescapeMountinfo(f[4]))
			}
		}
	}
	return out
}

// ImportBusybox imports the busybox image (Image) into the container's
// Docker, which starts docker.service.
func (m *Machine) ImportBusybox() {
	t := m.t
	t.Helper()
	busybox := Command(t, "busybox")
	Need(t, isStatic(busybox), "needs a static busybox (package busybox-static)")
	const tarPath = "/var/tmp/busybox-rootfs.tar"
	busyboxRootfs(t, busybox, m.Path(tarPath))
	m.MustRun(dockerClient, "import", "-c", "ENV PATH=/bin", tarPath, Image)
}

// removeDockerCgroups removes the cgroups dockerd made in the container
// (empty once it stopped), deepest first.
func (m *Machine) removeDockerCgroups() {
	for _, dir := range m.dockerCgroups {
		var dirs []string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !os.IsNotExist(err) {
				m.t.Errorf("remove cgroup %s: %v", dirs[i], err)
			}
		}
	}
}
