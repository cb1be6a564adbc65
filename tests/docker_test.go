package tests

// End-to-end tests with a real dockerd and butterd serving the btrfs volume
// plugin on /run/docker/plugins/btrfs.sock, each on a fresh BTRFS. Every
// dockerd looks for plugins in /run/docker/plugins, so none of these tests
// runs in parallel.

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"butterd/tests/testenv"
)

// dockerEnv is butterd on a data root of a fresh BTRFS, and a dockerd that
// uses it as the "btrfs" volume driver.
type dockerEnv struct {
	dataRoot string
	butterd  *testenv.Daemon
	docker   *testenv.Docker
}

func startDockerEnv(t *testing.T) *dockerEnv {
	t.Helper()
	testenv.Command(t, "btrfs")
	testenv.Command(t, "lsattr")
	dataRoot := filepath.Join(testenv.Btrfs(t), "butterd")
	e := &dockerEnv{dataRoot: dataRoot}
	// butterd before dockerd: dockerd's cleanup (removing containers, which
	// unmounts their volumes through the plugin) must run while butterd
	// still serves.
	e.butterd = testenv.StartButterd(t, dataRoot, testenv.PluginSocket)
	e.docker = testenv.StartDocker(t)
	return e
}

func (e *dockerEnv) volumePath(name string) string {
	return filepath.Join(e.dataRoot, "volumes", name)
}

// run starts a throwaway container with volume vol on /data and returns
// what it printed.
func (e *dockerEnv) run(t *testing.T, vol, script string) string {
	t.Helper()
	return e.docker.MustRun("run", "--rm", "--network", "none", "-v", vol+":/data", testenv.Image, "sh", "-c", script)
}

// pluginRemove sends VolumeDriver.Remove straight to butterd's socket and
// returns the Err it answered ("" on success).
func (e *dockerEnv) pluginRemove(t *testing.T, name string) string {
	t.Helper()
	status, resp := e.butterd.Call("/VolumeDriver.Remove", map[string]string{"Name": name})
	msg, _ := resp["Err"].(string)
	if (status == 200) != (msg == "") {
		t.Errorf("VolumeDriver.Remove %s: status %d with Err %q", name, status, msg)
	}
	return msg
}

func requireSubvolume(t *testing.T, path string) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if st.Ino != 256 {
		t.Errorf("%s has inode %d: not the root of a BTRFS subvolume", path, st.Ino)
	}
	if out, err := exec.Command("btrfs", "subvolume", "show", path).CombinedOutput(); err != nil {
		t.Errorf("btrfs subvolume show %q: %v: %s", path, err, out)
	}
}

func requireGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists (%v)", path, err)
	}
}

func requireFile(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s holds %q, want %q", path, got, want)
	}
}

// attrs returns the flags lsattr shows for path itself.
func attrs(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("lsattr", "-d", path).CombinedOutput()
	if err != nil {
		t.Fatalf("lsattr -d %q: %v: %s", path, err, out)
	}
	flags, _, _ := strings.Cut(string(out), " ")
	return flags
}

// snapshotsOf lists the snapshots NAME@... of a volume in the data root.
func (e *dockerEnv) snapshotsOf(t *testing.T, name string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.dataRoot, "snapshots"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), name+"@") {
			out = append(out, en.Name())
		}
	}
	return out
}

// listed reports whether `docker volume ls` shows the volume with driver
// btrfs.
func (e *dockerEnv) listed(t *testing.T, name string) bool {
	t.Helper()
	out := e.docker.MustRun("volume", "ls", "--format", "{{.Driver}} {{.Name}}")
	return slices.Contains(strings.Split(out, "\n"), "btrfs "+name)
}

func TestDockerVolumeLifecycle(t *testing.T) {
	e := startDockerEnv(t)
	dk := e.docker
	vol := e.volumePath("vol")

	if out := dk.MustRun("volume", "create", "-d", "btrfs", "vol"); out != "vol" {
		t.Errorf("docker volume create printed %q", out)
	}
	requireSubvolume(t, vol)
	if !e.listed(t, "vol") {
		t.Errorf("docker volume ls does not list vol with driver btrfs:\n%s", dk.MustRun("volume", "ls"))
	}
	if out := dk.MustRun("volume", "inspect", "--format", "{{.Driver}} {{.Mountpoint}}", "vol"); out != "btrfs "+vol {
		t.Errorf("docker volume inspect: %q, want %q", out, "btrfs "+vol)
	}

	e.run(t, "vol", "echo hi > /data/f")
	requireFile(t, filepath.Join(vol, "f"), "hi\n")
	if out := e.run(t, "vol", "cat /data/f"); out != "hi" {
		t.Errorf("a second container reads %q from the volume, want %q", out, "hi")
	}

	// A running container holds a mount id: butterd itself must refuse to
	// remove the volume (Docker's own check would hide a butterd bug).
	id := dk.MustRun("run", "-d", "--network", "none", "-v", "vol:/data", testenv.Image, "sleep", "300")
	if msg := e.pluginRemove(t, "vol"); !strings.Contains(msg, "in use") {
		t.Errorf("plugin Remove of a mounted volume: Err %q, want it to say the volume is in use", msg)
	}
	requireSubvolume(t, vol)
	requireFile(t, filepath.Join(vol, "f"), "hi\n")
	if _, err := dk.Run("volume", "rm", "vol"); err == nil {
		t.Errorf("docker volume rm of a volume a running container uses succeeded")
	}

	dk.MustRun("rm", "-f", id)
	dk.MustRun("volume", "rm", "vol")
	requireGone(t, vol)
	if e.listed(t, "vol") {
		t.Errorf("docker volume ls still lists vol after docker volume rm")
	}
	snaps := e.snapshotsOf(t, "vol")
	if len(snaps) != 1 {
		t.Fatalf("snapshots of vol after docker volume rm: %q, want one final snapshot", snaps)
	}
	snap := filepath.Join(e.dataRoot, "snapshots", snaps[0])
	requireSubvolume(t, snap)
	requireFile(t, filepath.Join(snap, "f"), "hi\n")
	if out, err := exec.Command("btrfs", "property", "get", "-ts", snap, "ro").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "ro=true" {
		t.Errorf("final snapshot %s: btrfs property get ro: %q %v, want ro=true", snap, out, err)
	}
}

func TestDockerCopyOnWriteFalse(t *testing.T) {
	e := startDockerEnv(t)
	dk := e.docker

	dk.MustRun("volume", "create", "-d", "btrfs", "-o", "copyonwrite=false", "nocow")
	dk.MustRun("volume", "create", "-d", "btrfs", "plain")
	nocow, plain := e.volumePath("nocow"), e.volumePath("plain")
	requireSubvolume(t, nocow)
	if a := attrs(t, nocow); !strings.Contains(a, "C") {
		t.Errorf("lsattr -d on the root of a copyonwrite=false volume: %q, want C", a)
	}
	if a := attrs(t, plain); strings.Contains(a, "C") {
		t.Errorf("lsattr -d on the root of a plain volume: %q, want no C", a)
	}

	e.run(t, "nocow", "echo x > /data/new")
	if a := attrs(t, filepath.Join(nocow, "new")); !strings.Contains(a, "C") {
		t.Errorf("lsattr on a file a container made in a copyonwrite=false volume: %q, want C", a)
	}

	// A .nocow file at the root makes the next mount turn NOCOW on for new
	// files.
	e.run(t, "plain", "touch /data/.nocow && echo a > /data/before")
	e.run(t, "plain", "echo b > /data/after")
	if a := attrs(t, filepath.Join(plain, "after")); !strings.Contains(a, "C") {
		t.Errorf("lsattr on a file made after mounting a volume with .nocow: %q, want C", a)
	}
}

func TestDockerCreateFrom(t *testing.T) {
	e := startDockerEnv(t)
	dk := e.docker

	dk.MustRun("volume", "create", "-d", "btrfs", "src")
	e.run(t, "src", "echo orig > /data/f")

	dk.MustRun("volume", "create", "-d", "btrfs", "-o", "from=src", "clone")
	clone := e.volumePath("clone")
	requireSubvolume(t, clone)
	requireFile(t, filepath.Join(clone, "f"), "orig\n")
	if out := e.run(t, "clone", "cat /data/f; echo changed > /data/f"); out != "orig" {
		t.Errorf("a container reads %q from the clone, want %q", out, "orig")
	}
	requireFile(t, filepath.Join(e.volumePath("src"), "f"), "orig\n")

	// From a snapshot: the final one of a removed volume.
	dk.MustRun("volume", "rm", "src")
	snaps := e.snapshotsOf(t, "src")
	if len(snaps) != 1 {
		t.Fatalf("snapshots of src after docker volume rm: %q, want one", snaps)
	}
	dk.MustRun("volume", "create", "-d", "btrfs", "-o", "from="+snaps[0], "src")
	requireSubvolume(t, e.volumePath("src"))
	if out := e.run(t, "src", "cat /data/f"); out != "orig" {
		t.Errorf("volume made from snapshot %s holds %q, want %q", snaps[0], out, "orig")
	}

	_, err := dk.Run("volume", "create", "-d", "btrfs", "-o", "from=nosuch", "other")
	if err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("volume create -o from=nosuch: %v, want an error naming nosuch", err)
	}
	requireGone(t, e.volumePath("other"))
}

func TestDockerVolumeOptions(t *testing.T) {
	e := startDockerEnv(t)
	dk := e.docker

	_, err := dk.Run("volume", "create", "-d", "btrfs", "-o", "bogus=1", "vol")
	if err == nil {
		t.Fatal("docker volume create -o bogus=1 succeeded")
	}
	for _, want := range []string{"bogus", "copyonwrite", "from", "finalsnapshot"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error for -o bogus=1 does not name %q: %v", want, err)
		}
	}
	requireGone(t, e.volumePath("vol"))
	if e.listed(t, "vol") {
		t.Errorf("docker volume ls lists vol after a refused create")
	}

	_, err = dk.Run("volume", "create", "-d", "btrfs", "-o", "copyonwrite=maybe", "vol")
	if err == nil || !strings.Contains(err.Error(), "copyonwrite") {
		t.Errorf("docker volume create -o copyonwrite=maybe: %v, want an error naming the option", err)
	}
	requireGone(t, e.volumePath("vol"))

	dk.MustRun("volume", "create", "-d", "btrfs", "-o", "finalsnapshot=false", "scratch")
	e.run(t, "scratch", "echo x > /data/f")
	dk.MustRun("volume", "rm", "scratch")
	requireGone(t, e.volumePath("scratch"))
	if snaps := e.snapshotsOf(t, "scratch"); len(snaps) > 0 {
		t.Errorf("volume made with finalsnapshot=false left snapshots %q", snaps)
	}
}

func TestDockerMountsSurviveRestart(t *testing.T) {
	e := startDockerEnv(t)
	dk := e.docker

	dk.MustRun("volume", "create", "-d", "btrfs", "vol")
	e.run(t, "vol", "echo hi > /data/f")
	id := dk.MustRun("run", "-d", "--network", "none", "-v", "vol:/data", testenv.Image, "sleep", "300")
	if msg := e.pluginRemove(t, "vol"); !strings.Contains(msg, "in use") {
		t.Fatalf("plugin Remove of a mounted volume: Err %q, want it to say the volume is in use", msg)
	}

	if err := e.butterd.Stop(); err != nil {
		t.Fatalf("butterd after SIGTERM: %v", err)
	}
	e.butterd = testenv.StartButterd(t, e.dataRoot, testenv.PluginSocket)
	// Cleanups run last first: the container goes while this butterd still
	// serves, so Docker can unmount its volume.
	t.Cleanup(func() { dk.Run("rm", "-f", id) })
	if msg := e.pluginRemove(t, "vol"); !strings.Contains(msg, "in use") {
		t.Fatalf("after a butterd restart, plugin Remove of a mounted volume: Err %q, want it to say the volume is in use", msg)
	}
	requireFile(t, filepath.Join(e.volumePath("vol"), "f"), "hi\n")

	// Docker unmounts through the new butterd; then the volume goes.
	dk.MustRun("rm", "-f", id)
	dk.MustRun("volume", "rm", "vol")
	requireGone(t, e.volumePath("vol"))
	if snaps := e.snapshotsOf(t, "vol"); len(snaps) != 1 {
		t.Errorf("snapshots of vol after docker volume rm: %q, want one final snapshot", snaps)
	}
}
