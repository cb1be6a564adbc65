// Command nfpm builds butterd's .deb or .rpm with nfpm used as a library.
// Run it from the module root after the binaries, man pages and
// completions are in BIN (make deb and make rpm do it all):
//
//	go run ./packaging/nfpm --format deb|rpm --version 0.1.0 [--bin bin/pkg] [--out bin]
//
// It prints the path of the package it wrote.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm"
)

const (
	maintainer = "butterd maintainers <butterd@example.org>"
	summary    = "Docker volumes as BTRFS subvolumes, with snapshots and schedules"
	// The cgo build of butterd needs glibc 2.34 or newer.
	glibc = "2.34"
)

// description's first line is the summary; Debian wants the rest indented
// by nfpm, which it does.
const description = summary + `
butterd keeps every Docker volume of a host as a BTRFS subvolume: instant
snapshots, restore, clones, retention, scheduled jobs as systemd timers and
incremental replication to other hosts. It is a socket-activated systemd
service speaking Docker's volume plugin protocol as the driver "btrfs",
managed over the system D-Bus (io.butterd.volumes1) with butterctl.`

// rpmDistributions is what the rpm supports: systemd, sysusers.d and
// glibc >= 2.34 (the cgo build).
const rpmDistributions = `
Supported distributions: RHEL, AlmaLinux, Rocky Linux and CentOS Stream 9 or
newer, Fedora 35 or newer, openSUSE Tumbleweed and SUSE Linux Enterprise 15 SP6
or newer (any with systemd and glibc >= 2.34).`

func main() {
	format := flag.String("format", "deb", "deb or rpm")
	version := flag.String("version", "0.1.0", "package version")
	release := flag.String("release", "1", "package release (rpm) / Debian revision")
	binDir := flag.String("bin", "bin/pkg", "directory holding butterd, butterctl, man/ and completions/")
	outDir := flag.String("out", "bin", "where the package is written")
	arch := flag.String("arch", "amd64", "architecture (Go's name)")
	flag.Parse()
	path, err := build(*format, *version, *release, *binDir, *outDir, *arch)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nfpm:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

func build(format, version, release, binDir, outDir, arch string) (string, error) {
	if format != "deb" && format != "rpm" {
		return "", fmt.Errorf("--format %q: deb or rpm", format)
	}
	mtime := time.Now().UTC().Truncate(time.Second)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "", fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		mtime = time.Unix(sec, 0).UTC()
	}
	tmp, err := os.MkdirTemp("", "butterd-nfpm-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)

	// Where the distributions want things.
	unitDir, zshDir := "/usr/lib/systemd/system", "/usr/share/zsh/site-functions"
	if format == "deb" {
		unitDir, zshDir = "/lib/systemd/system", "/usr/share/zsh/vendor-completions"
	}
	file := func(src, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: src, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode}}
	}
	contents := files.Contents{
		file(filepath.Join(binDir, "butterd"), "/usr/bin/butterd", 0o755),
		file(filepath.Join(binDir, "butterctl"), "/usr/bin/butterctl", 0o755),
		file("packaging/dbus/io.butterd.volumes1.conf", "/usr/share/dbus-1/system.d/io.butterd.volumes1.conf", 0o644),
		file("packaging/dbus/io.butterd.volumes1.service", "/usr/share/dbus-1/system-services/io.butterd.volumes1.service", 0o644),
		file("packaging/sysusers.d/butterd.conf", "/usr/lib/sysusers.d/butterd.conf", 0o644),
		file(filepath.Join(binDir, "man", "butterd.8.gz"), "/usr/share/man/man8/butterd.8.gz", 0o644),
		file(filepath.Join(binDir, "man", "butterctl.8.gz"), "/usr/share/man/man8/butterctl.8.gz", 0o644),
		file(filepath.Join(binDir, "completions", "butterctl.bash"), "/usr/share/bash-completion/completions/butterctl", 0o644),
		file(filepath.Join(binDir, "completions", "_butterctl"), zshDir+"/_butterctl", 0o644),
		file(filepath.Join(binDir, "completions", "butterctl.fish"), "/usr/share/fish/vendor_completions.d/butterctl.fish", 0o644),
		// 0640 root:root: WEBHOOK_URL may carry a token; only butterd (root)
		// reads the file.
		{Source: "packaging/butterd.conf", Destination: "/etc/butterd/butterd.conf", Type: files.TypeConfigNoReplace,
			FileInfo: &files.ContentFileInfo{Mode: 0o640}},
	}
	for _, u := range []string{"butterd.service", "butterd-pool.service", "butterd.socket", "butterd-ssh.socket", "butterd-schedules.target"} {
		contents = append(contents, file(filepath.Join("packaging/systemd", u), unitDir+"/"+u, 0o644))
	}

	info := &nfpm.Info{
		Name:          "butterd",
		Arch:          arch,
		Platform:      "linux",
		Version:       version,
		VersionSchema: "none",
		Release:       release,
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    maintainer,
		Vendor:        "butterd",
		Homepage:      "https://example.org/butterd",
		License:       "LicenseRef-butterd-undeclared",
		Description:   description,
		MTime:         mtime,
	}
	info.Contents = contents
	scripts := func(dir string, names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, filepath.Join("packaging/scripts", dir, n))
		}
		return out
	}
	switch format {
	case "deb":
		s := scripts("deb", "preinst", "postinst", "prerm", "postrm")
		info.Scripts = nfpm.Scripts{PreInstall: s[0], PostInstall: s[1], PreRemove: s[2], PostRemove: s[3]}
		info.Depends = []string{"libc6 (>= " + glibc + ")", "btrfs-progs", "dbus"}
		info.Recommends = []string{"docker.io | docker-ce"}
		info.Deb.Compression = "xz"
		changelog := filepath.Join(tmp, "changelog.Debian.gz")
		if err := debianChangelog(changelog, version+"-"+release, mtime); err != nil {
			return "", err
		}
		info.Contents = append(info.Contents,
			file("packaging/copyright", "/usr/share/doc/butterd/copyright", 0o644),
			file("packaging/lintian/butterd", "/usr/share/lintian/overrides/butterd", 0o644),
			file(changelog, "/usr/share/doc/butterd/changelog.Debian.gz", 0o644))
	case "rpm":
		s := scripts("rpm", "pre", "post", "preun", "postun")
		info.Scripts = nfpm.Scripts{PreInstall: s[0], PostInstall: s[1], PreRemove: s[2], PostRemove: s[3]}
		info.Depends = []string{"glibc >= " + glibc, "btrfs-progs", "dbus"}
		info.RPM.Summary = summary
		info.RPM.Group = "System Environment/Daemons"
		info.Description += "\n" + rpmDistributions
		info.Contents = append(info.Contents, &files.Content{
			Source: "packaging/copyright", Destination: "/usr/share/licenses/butterd/copyright", Type: files.TypeRPMLicense,
			FileInfo: &files.ContentFileInfo{Mode: 0o644}})
	}

	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return "", err
	}
	pkg, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(outDir, pkg.ConventionalFileName(info))
	f, err := os.Create(out + ".tmp")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		return "", fmt.Errorf("%s: %w", format, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return out, os.Rename(f.Name(), out)
}

// debianChangelog writes the one-entry changelog.Debian.gz a .deb carries.
func debianChangelog(path, version string, when time.Time) error {
	text := fmt.Sprintf("butterd (%s) unstable; urgency=medium\n\n  * Built with make deb.\n\n -- %s  %s\n",
		version, maintainer, when.Format(time.RFC1123Z))
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return err
	}
	zw.Header.OS = 3
	zw.Write([]byte(text))
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
