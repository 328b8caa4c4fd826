package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Work does one tenant's job. It returns Succeeded or UpToDate with the
// mode's detail; Skipped with an error saying why, for a tenant the mode
// leaves for another run; or an error (with whatever detail is known, so a failed
// tenant's report says where it was left). ctx is cancelled when the
// tenant's timeout passes or the run is hard-cancelled; Work must return
// promptly then.
type Work func(ctx context.Context, t tenant.Tenant) (Status, Detail, error)

// Options tune a run. Zero values mean the documented defaults.
type Options struct {
	Concurrency   int           // tenants worked on at once; default 10
	TenantTimeout time.Duration // per tenant; default 10m
	MaxFailures   int           // stop starting tenants once this many failed; 0 = unlimited

	// Canary: these tenants run first, and all must succeed before any other
	// tenant is started. CanaryCount takes the first N tenants found;
	// CanaryGlobs takes the tenants whose id or name matches.
	CanaryCount int
	CanaryGlobs []string

	// Grace is how long in-flight tenants may keep going after the run is
	// cancelled (SIGTERM) before their contexts are cancelled too. Default 5s,
	// so a cancelled run still ends well inside the 10 seconds GitHub allows.
	Grace time.Duration

	Progress      io.Writer     // progress lines; nil = none
	ProgressEvery time.Duration // default 5s
	// ProgressNote, when set, adds the mode's own figures to each progress
	// line (backup: bytes dumped and throughput).
	ProgressNote func() string
	// OnDone is called once per tenant as it finishes, from the runner's
	// goroutine (never concurrently).
	OnDone func(Result)
}

// Outcome is a whole run's result.
type Outcome struct {
	Results []Result // one per tenant found, in the order found
	// Stopped is why the run stopped starting tenants early, nil if it did
	// not: one of ErrCancelled, ErrCanaryFailed, ErrMaxFailures or
	// ErrNoCanaryMatch (test with errors.Is), wrapped with its detail.
	// Its text is what skipped tenants give as their Reason.
	Stopped   error
	Cancelled bool  // the run's context was cancelled (signal)
	SourceErr error // listing tenants failed
}

// Why a run stopped starting tenants early (Outcome.Stopped).
var (
	ErrCancelled    = errors.New("cancelled")     // the run's context was cancelled
	ErrCanaryFailed = errors.New("canary failed") // wrapped with the first failed canary's name
	ErrMaxFailures  = errors.New("max-failures")  // wrapped with the limit: "max-failures (3) reached"
	// ErrNoCanaryMatch: canary globs were given and matched no tenant, so no
	// tenant was started. A protection the user asked for never silently
	// switches off: this is input the user must fix.
	ErrNoCanaryMatch = errors.New("canary matched no tenant, so no tenant was started")
)

var errCanceledByRun = errors.New("cancelled: the run was interrupted while this tenant was in progress")

// Run takes tenants from src and applies work to each. Cancelling ctx stops
// new tenants from starting; in-flight ones get Options.Grace to finish.
func Run(ctx context.Context, o Options, src tenant.Source, work Work) Outcome {
	o = o.withDefaults()
	r := &run{
		o:        o,
		work:     work,
		started:  time.Now(),
		finished: make(chan Result, o.Concurrency),
	}
	return r.loop(ctx, src)
}

func (o Options) withDefaults() Options {
	if o.Concurrency <= 0 {
		o.Concurrency = 10
	}
	if o.TenantTimeout <= 0 {
		o.TenantTimeout = 10 * time.Minute
	}
	if o.Grace <= 0 {
		o.Grace = 5 * time.Second
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 5 * time.Second
	}
	return o
}

type run struct {
	o       Options
	work    Work
	started time.Time

	results  []Result
	finished chan Result // a result whose work ended; Result.index says whose

	running  int
	done     int
	failed   int
	listing  bool
	stopped  error
	canaries struct {
		enabled  bool
		found    int // canary tenants found
		finished int
		failed   []string
		open     bool // canary stage still deciding
	}
	held  []int // non-canary tenants waiting for the canary stage
	ready []int // tenants cleared to start
}

func (r *run) loop(ctx context.Context, src tenant.Source) Outcome {
	// hardCtx is what in-flight work runs under; it outlives ctx by Grace.
	hardCtx, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	listCtx, stopListing := context.WithCancel(ctx)
	defer stopListing()

	r.canaries.enabled = r.o.CanaryCount > 0 || len(r.o.CanaryGlobs) > 0
	r.canaries.open = r.canaries.enabled

	tenants := make(chan tenant.Tenant)
	var sourceErr error
	listDone := make(chan struct{})
	r.listing = true
	go func() {
		defer close(listDone)
		defer close(tenants)
		sourceErr = src.Tenants(listCtx, func(t tenant.Tenant) bool {
			select {
			case tenants <- t:
				return true
			case <-listCtx.Done():
				return false
			}
		})
	}()

	ticker := time.NewTicker(r.o.ProgressEvery)
	defer ticker.Stop()
	var graceTimer <-chan time.Time
	cancelled := false
	ctxDone := ctx.Done()

	for {
		r.startReady(hardCtx)
		if !r.listing && r.running == 0 && len(r.ready) == 0 {
			r.closeCanaryStage()
			if len(r.ready) == 0 {
				break
			}
			continue
		}
		in := tenants
		if !r.listing {
			in = nil
		}
		select {
		case t, ok := <-in:
			if !ok {
				r.listing = false
				<-listDone
				r.closeCanaryStage()
				continue
			}
			r.add(t)
		case res := <-r.finished:
			r.results[res.index] = res
			r.running--
			r.done++
			if res.Status == Failed {
				r.failed++
			}
			if res.Canary {
				r.canaries.finished++
				if res.Status == Failed || res.Status == Cancelled {
					r.canaries.failed = append(r.canaries.failed, res.Tenant.String())
				}
			}
			if r.o.OnDone != nil {
				r.o.OnDone(res)
			}
			if r.o.MaxFailures > 0 && r.failed >= r.o.MaxFailures && r.stopped == nil {
				// Listing goes on (it is cheap: connection strings are only
				// resolved for tenants that start) so the report can name
				// every tenant that was skipped.
				r.stop(fmt.Errorf("%w (%d) reached", ErrMaxFailures, r.o.MaxFailures))
			}
			r.maybeCloseCanaryStage()
		case <-ticker.C:
			r.progress(false)
		case <-ctxDone:
			ctxDone = nil
			cancelled = true
			r.stop(ErrCancelled)
			stopListing()
			graceTimer = time.After(r.o.Grace)
		case <-graceTimer:
			hardCancel()
		}
	}
	r.progress(true)
	if r.stopped != nil && errors.Is(sourceErr, context.Canceled) {
		sourceErr = nil // we stopped listing on purpose
	}
	return Outcome{Results: r.results, Stopped: r.stopped, Cancelled: cancelled, SourceErr: sourceErr}
}

// add records a newly found tenant and decides when it may start.
func (r *run) add(t tenant.Tenant) {
	i := len(r.results)
	res := Result{Tenant: t, index: i}
	if r.canaries.enabled && r.isCanary(t) {
		res.Canary = true
		r.canaries.found++
	}
	r.results = append(r.results, res)
	switch {
	case r.stopped != nil:
		r.skip(i, r.stopped)
	case res.Canary || !r.canaries.open:
		r.ready = append(r.ready, i)
	default:
		r.held = append(r.held, i)
	}
}

func (r *run) isCanary(t tenant.Tenant) bool {
	if len(r.o.CanaryGlobs) > 0 {
		return tenant.MatchAny(r.o.CanaryGlobs, t.ID, t.Name)
	}
	return r.canaries.found < r.o.CanaryCount
}

// maybeCloseCanaryStage ends the canary stage once its outcome is known.
func (r *run) maybeCloseCanaryStage() {
	if !r.canaries.open {
		return
	}
	if len(r.canaries.failed) > 0 {
		r.stop(fmt.Errorf("%w: %s", ErrCanaryFailed, r.canaries.failed[0]))
		r.closeCanaryStage()
		return
	}
	countDone := len(r.o.CanaryGlobs) == 0 && r.canaries.finished >= r.o.CanaryCount
	if countDone {
		r.closeCanaryStage()
	}
}

// closeCanaryStage releases held tenants (or skips them if a canary failed).
// It is called when the stage is decided, or when listing has ended and every
// canary found has finished.
func (r *run) closeCanaryStage() {
	if !r.canaries.open {
		return
	}
	if r.listing || r.canaries.finished < r.canaries.found {
		if r.stopped == nil {
			return
		}
	}
	if len(r.o.CanaryGlobs) > 0 && r.canaries.found == 0 && len(r.held) > 0 && r.stopped == nil {
		r.stop(ErrNoCanaryMatch)
	}
	r.canaries.open = false
	for _, i := range r.held {
		if r.stopped != nil {
			r.skip(i, r.stopped)
		} else {
			r.ready = append(r.ready, i)
		}
	}
	r.held = nil
}

func (r *run) stop(why error) {
	if r.stopped != nil {
		return
	}
	r.stopped = why
	for _, i := range r.ready {
		r.skip(i, why)
	}
	r.ready = nil
	for _, i := range r.held {
		r.skip(i, why)
	}
	r.held = nil
}

func (r *run) skip(i int, why error) {
	r.results[i].Status = Skipped
	r.results[i].Reason = why.Error()
	r.done++
}

// startReady starts tenants while there is capacity.
func (r *run) startReady(hardCtx context.Context) {
	for len(r.ready) > 0 && r.running < r.o.Concurrency && r.stopped == nil {
		i := r.ready[0]
		r.ready = r.ready[1:]
		r.running++
		go r.execute(hardCtx, r.results[i])
	}
}

// execute runs on its own goroutine with a copy of the tenant's Result and
// hands it back to the loop, which alone touches r.results.
func (r *run) execute(hardCtx context.Context, res Result) {
	res.Started = time.Now()
	ctx, cancel := context.WithTimeout(hardCtx, r.o.TenantTimeout)
	defer cancel()
	if err := resolve(ctx, &res.Tenant); err != nil {
		res.Status, res.Err = Failed, err
	} else {
		status, detail, err := safeWork(ctx, r.work, res.Tenant)
		res.Detail = detail
		switch {
		case status == Skipped && hardCtx.Err() == nil:
			// The mode chose not to do this tenant now (sync-secrets when
			// its time budget is spent); its error says why.
			res.Status = Skipped
			if err != nil {
				res.Reason = err.Error()
			}
		case err == nil:
			res.Status = status
		case hardCtx.Err() != nil:
			res.Status, res.Err = Cancelled, fmt.Errorf("%w (%v)", errCanceledByRun, err)
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			res.Status, res.Err = Failed, fmt.Errorf("timed out after %s (tenant-timeout): %w", r.o.TenantTimeout, err)
		default:
			res.Status, res.Err = Failed, err
		}
	}
	res.Duration = time.Since(res.Started)
	r.finished <- res
}

// resolve fills in the tenant's connection string when its source defers
// that (Neon: one API call per tenant, made only for tenants that start).
func resolve(ctx context.Context, t *tenant.Tenant) error {
	if t.Resolve == nil {
		return nil
	}
	u, err := t.Resolve(ctx)
	if err != nil {
		return fmt.Errorf("resolve connection string: %w", err)
	}
	t.URL, t.Resolve = u, nil
	return nil
}

// safeWork turns a panic in one tenant's work into that tenant's failure, so
// it cannot take the rest of the fleet down with it.
func safeWork(ctx context.Context, work Work, t tenant.Tenant) (s Status, d Detail, err error) {
	defer func() {
		if p := recover(); p != nil {
			s, err = Failed, fmt.Errorf("internal error (panic): %v", p)
		}
	}()
	return work(ctx, t)
}

func (r *run) progress(final bool) {
	if r.o.Progress == nil {
		return
	}
	elapsed := time.Since(r.started)
	rate := float64(r.done) / elapsed.Seconds()
	total := fmt.Sprint(len(r.results))
	if r.listing {
		total = fmt.Sprintf("%d+ (still listing)", len(r.results))
	}
	eta := "?"
	if rate > 0 && !r.listing {
		left := len(r.results) - r.done
		eta = (time.Duration(float64(left) / rate * float64(time.Second))).Round(time.Second).String()
	}
	prefix := "progress"
	if final {
		prefix = "finished"
		eta = "0s"
	}
	note := ""
	if r.o.ProgressNote != nil {
		if n := r.o.ProgressNote(); n != "" {
			note = "; " + n
		}
	}
	fmt.Fprintf(r.o.Progress, "%s: %d/%s done, %d running, %d failed, %.1f tenants/s, elapsed %s, ETA %s%s\n",
		prefix, r.done, total, r.running, r.failed, rate, elapsed.Round(100*time.Millisecond), eta, note)
}
