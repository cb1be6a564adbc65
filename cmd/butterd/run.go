package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/coreos/go-systemd/v22/journal"
	"github.com/godbus/dbus/v5"

	"butterd/dbusapi/server"
	"butterd/service"
	"butterd/service/docker"
	"butterd/service/plugin"
	"butterd/service/webhook"
	"butterd/units"
	"butterd/units/systemd"
)

func runCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("butterd run", flag.ContinueOnError)
	configFile := fs.String("config", defaultConfigFile, "config file (KEY = value lines)")
	mountPool := fs.Bool("mount-pool", true, "make and mount the pool image when DATA_ROOT is not on BTRFS, as butterd pool does; false: refuse to start then (butterd.service, whose mount namespace is private)")
	for _, k := range configKeys {
		fs.String(flagName(k.name), k.def, fmt.Sprintf("%s (env BUTTERD_%s, file key %s)", k.help, k.name, k.name))
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: butterd run [FLAGS]\n\nServes the Docker volume plugin %q. Each setting is a flag, an env variable\nor a line of the config file; flags win over env, env over the file.\n\n", plugin.DriverName)
		fs.PrintDefaults()
	}
	cfg, fileGiven, err := parseCommandLine(fs, args, configFile)
	if err != nil {
		return err
	}
	policies, err := readPolicies(*configFile)
	if err != nil && (!os.IsNotExist(err) || fileGiven) {
		return err
	}
	log, err := newLogger(cfg["LOG_LEVEL"])
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	exitIdle, err := service.ParseSpan(cfg["EXIT_IDLE"])
	if err != nil {
		return fmt.Errorf("EXIT_IDLE: %w", err)
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	act := newActivity()

	ensurePool := func() error { return service.EnsurePool(cfg["DATA_ROOT"], cfg["POOL_SIZE"], log) }
	if !*mountPool {
		ensurePool = func() error { return requirePool(cfg["DATA_ROOT"]) }
	}
	if err := ensurePool(); err != nil {
		return err
	}
	sockets, err := passedListeners()
	if err != nil {
		return err
	}
	sd := connectSystemd(cfg["SYSTEMD_BUS"], log)
	if c, ok := sd.(interface{ Close() error }); ok {
		defer c.Close()
	}
	engine, err := containerEngine(cfg["DOCKER_HOST"])
	if err != nil {
		return err
	}
	var jobFailed func(service.Job)
	if u := cfg["WEBHOOK_URL"]; u != "" {
		hook, err := webhook.New(u, log)
		if err != nil {
			return err
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			hook.Close(ctx)
		}()
		jobFailed = hook.JobFailed
	}
	ssh := &sshEndpoint{ctx: ctx, log: log, act: act, sd: sd, managed: sockets.plugin != nil,
		addr: net.JoinHostPort(cfg["SSH_ADDRESS"], cfg["SSH_PORT"]),
		host: cfg["SSH_ADDRESS"], port: cfg["SSH_PORT"], unitDir: cfg["UNIT_DIR"]}
	store, err := service.Open(service.Config{Root: cfg["DATA_ROOT"], Logger: log,
		UnitDir: cfg["UNIT_DIR"], Systemd: sd, Butterctl: cfg["BUTTERCTL"], Policies: policies, Containers: engine,
		JobFailed: jobFailed, PeerAdded: ssh.peerAdded, PeerRemoved: ssh.peerRemoved})
	if err != nil {
		return err
	}
	defer store.Close()
	ssh.store = store

	// A socket butterd bound itself is removed when the listener closes; one
	// systemd passed is left alone.
	l, err := pluginListener(sockets, cfg["PLUGIN_SOCKET"])
	if err != nil {
		return err
	}
	bus, err := serveBus(store, log, act)
	if err != nil {
		l.Close()
		return err
	}
	if bus != nil {
		defer bus.Close()
	}

	if err := ssh.start(sockets.ssh); err != nil {
		log.Error("replication endpoint not served", "error", err)
	}

	srv := &http.Server{
		Handler:           act.wrap(plugin.New(store, log)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("butterd serving the Docker volume plugin", "driver", plugin.DriverName, "socket", l.Addr().String(), "data_root", store.Root())
	daemon.SdNotify(false, daemon.SdNotifyReady)
	go notifyLoop(ctx, store, log)
	go watchIdle(ctx, exitIdle, act, func() bool { return store.JobsRunning() > 0 }, func() {
		if ssh.handOver() {
			return // systemd stops butterd and starts it again
		}
		log.Info("idle: exiting until the next plugin request, D-Bus call or replication connection", "idle", act.limit(exitIdle))
		stop()
	})

	select {
	case err := <-errc:
		return fmt.Errorf("plugin server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	if bus != nil {
		bus.Release()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	ssh.wait()
	// Jobs get a moment to finish; what still runs is canceled and recorded.
	jctx, jcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer jcancel()
	store.WaitJobs(jctx)
	return nil
}

// serveBus puts butterd on the system bus. Without a reachable bus, butterd
// keeps serving the plugin and says management is unavailable; a bus name
// owned by another process is an error.
func serveBus(store *service.Store, log *slog.Logger, act *activity) (*server.Server, error) {
	conn, err := dbus.ConnectSystemBus(dbus.WithIncomingInterceptor(func(msg *dbus.Message) {
		if msg.Type == dbus.TypeMethodCall {
			act.touch()
		}
	}))
	if err != nil {
		log.Warn("no system bus: management over D-Bus (butterctl) is unavailable; the Docker plugin is served", "error", err)
		return nil, nil
	}
	srv, err := server.Serve(conn, store, log)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return srv, nil
}

// containerEngine is the Docker Engine at host, or none. It connects on
// first use: Docker waits for the plugin at its start.
func containerEngine(host string) (service.Containers, error) {
	if host == "none" || host == "" {
		return nil, nil // a nil interface, not a nil *docker.Engine
	}
	return docker.New(host, plugin.DriverName)
}

// connectSystemd reaches systemd for the schedules; without it butterd
// serves everything else and says schedules are unavailable.
func connectSystemd(address string, log *slog.Logger) units.Manager {
	sd, err := systemd.ConnectAddress(address)
	if err != nil {
		log.Warn("schedules are unavailable: they need systemd", "error", err)
		return nil // a nil interface, not a nil *systemd.Client
	}
	log.Info("schedules run as systemd timers", "systemd", sd.Via())
	return sd
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL %q: use debug, info, warn or error", level)
	}
	// Run by systemd with its stderr on the journal: structured fields.
	if ok, _ := journal.StderrIsJournalStream(); ok && journal.Enabled() {
		return slog.New(&journalHandler{level: l}), nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// isSocketInUse reports whether something answers on a unix socket path.
func isSocketInUse(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// trimUnix strips a unix:// prefix.
func trimUnix(s string) string { return strings.TrimPrefix(s, "unix://") }
