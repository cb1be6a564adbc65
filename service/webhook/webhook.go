// Package webhook posts butterd's failures as JSON to a URL (the config key
// WEBHOOK_URL): each failed job once, in the background, with a few
// retries. It is an edge: the service only hands it the failed jobs.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"butterd/service"
)

// Event is the JSON posted.
type Event struct {
	Event string      `json:"event"` // "job_failed"
	Host  string      `json:"host"`  // the host name of the machine butterd runs on
	Time  time.Time   `json:"time"`
	Job   service.Job `json:"job"`
}

// Limits of the poster.
const (
	queueLen = 64               // failures waiting to be posted; more are logged and dropped
	attempts = 3                // posts of one failure before giving up
	timeout  = 10 * time.Second // each post
)

// retryDelay is the wait before the second post of a failure; it grows
// four times for each next one.
var retryDelay = time.Second

// Poster posts failures to one URL.
type Poster struct {
	url    string
	where  string // scheme and host, for logs (the URL may hold a token)
	host   string
	client *http.Client
	log    *slog.Logger

	mu     sync.Mutex
	closed bool
	queue  chan Event
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks the URL and starts the poster.
func New(rawURL string, log *slog.Logger) (*Poster, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("WEBHOOK_URL %q: give an http:// or https:// URL", rawURL)
	}
	host, _ := os.Hostname()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Poster{
		url:   rawURL,
		where: u.Scheme + "://" + u.Host,
		host:  host,
		client: &http.Client{
			// A redirect is an answer to report, not to follow with the body.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log:    log.With("subsystem", "webhook"),
		queue:  make(chan Event, queueLen),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go p.run()
	return p, nil
}

// JobFailed queues a failed job to be posted. It never blocks: with the
// queue full, the failure is only logged.
func (p *Poster) JobFailed(j service.Job) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	select {
	case p.queue <- Event{Event: "job_failed", Host: p.host, Time: time.Now(), Job: j}:
	default:
		p.log.Warn("failure not posted: too many waiting", "url", p.where, "job", j.ID)
	}
}

// Close posts what is queued, giving up when ctx ends.
func (p *Poster) Close(ctx context.Context) {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.queue)
	}
	p.mu.Unlock()
	select {
	case <-p.done:
	case <-ctx.Done():
		p.cancel()
		<-p.done
	}
	p.cancel()
}

func (p *Poster) run() {
	defer close(p.done)
	for ev := range p.queue {
		p.post(ev)
	}
}

// post posts one event, retrying a few times.
func (p *Poster) post(ev Event) {
	body, err := json.Marshal(ev)
	if err != nil {
		p.log.Error("failure not posted", "job", ev.Job.ID, "error", err)
		return
	}
	delay := retryDelay
	for i := 1; ; i++ {
		start := time.Now()
		err := p.once(body)
		if err == nil {
			p.log.Info("failure posted", "url", p.where, "job", ev.Job.ID, "duration", time.Since(start))
			return
		}
		if i == attempts || p.ctx.Err() != nil {
			p.log.Warn("failure not posted", "url", p.where, "job", ev.Job.ID, "attempts", i, "error", err)
			return
		}
		p.log.Debug("webhook post failed; trying again", "url", p.where, "job", ev.Job.ID, "attempt", i, "error", err)
		select {
		case <-time.After(delay):
		case <-p.ctx.Done():
		}
		delay *= 4
	}
}

func (p *Poster) once(body []byte) error {
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "butterd")
	resp, err := p.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err // without the URL, which may hold a token
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}
