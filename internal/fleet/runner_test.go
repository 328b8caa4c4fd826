package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/syncio"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// fixed is n tenants t000.., named name-t000...
func fixed(n int) tenant.Static {
	out := make(tenant.Static, n)
	for i := range out {
		id := fmt.Sprintf("t%03d", i)
		out[i] = tenant.Tenant{ID: id, Name: "name-" + id}
	}
	return out
}

// gated yields the tenants of list, waiting on gate before the one at
// gateAt, so tests can observe pipelining.
func gated(list tenant.Static, gateAt int, gate <-chan struct{}) tenant.Source {
	return tenant.SourceFunc(func(ctx context.Context, yield func(tenant.Tenant) bool) error {
		if err := list[:gateAt].Tenants(ctx, yield); err != nil {
			return err
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
		return list[gateAt:].Tenants(ctx, yield)
	})
}

// failingAfter yields list, then fails as a listing that breaks part-way.
func failingAfter(list tenant.Static, err error) tenant.Source {
	return tenant.SourceFunc(func(ctx context.Context, yield func(tenant.Tenant) bool) error {
		list.Tenants(ctx, yield)
		return err
	})
}

func byID(out Outcome) map[string]Result {
	m := map[string]Result{}
	for _, r := range out.Results {
		m[r.Tenant.ID] = r
	}
	return m
}

func TestRunAllSucceedWithinConcurrencyCap(t *testing.T) {
	var now, peak atomic.Int32
	work := func(ctx context.Context, tn tenant.Tenant) (Status, Detail, error) {
		n := now.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		now.Add(-1)
		return Succeeded, idDetail(tn.ID), nil
	}
	out := Run(context.Background(), Options{Concurrency: 4}, fixed(40), work)
	c := Count(out.Results)
	if c.Total != 40 || c.Succeeded != 40 {
		t.Fatalf("counts = %+v, want 40 succeeded", c)
	}
	if peak.Load() > 4 || peak.Load() < 2 {
		t.Fatalf("peak concurrency %d, want 2..4", peak.Load())
	}
	for i, r := range out.Results {
		if r.Tenant.ID != fmt.Sprintf("t%03d", i) || r.Detail != idDetail(r.Tenant.ID) {
			t.Fatalf("result %d = %+v: results must keep the order found and carry the detail", i, r)
		}
	}
}

func TestRunStartsWorkBeforeListingEnds(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	work := func(ctx context.Context, tn tenant.Tenant) (Status, Detail, error) {
		once.Do(func() { close(gate) }) // listing can only go on once work has started
		return Succeeded, nil, nil
	}
	done := make(chan Outcome)
	go func() {
		done <- Run(context.Background(), Options{}, gated(fixed(10), 5, gate), work)
	}()
	select {
	case out := <-done:
		if c := Count(out.Results); c.Succeeded != 10 {
			t.Fatalf("counts %+v", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runner waited for the whole listing before starting work")
	}
}

func TestRunMaxFailuresStopsStartingTenants(t *testing.T) {
	var started atomic.Int32
	work := func(ctx context.Context, tn tenant.Tenant) (Status, Detail, error) {
		started.Add(1)
		return "", nil, errors.New("boom")
	}
	out := Run(context.Background(), Options{Concurrency: 1, MaxFailures: 3}, fixed(20), work)
	c := Count(out.Results)
	if c.Failed != 3 || started.Load() != 3 {
		t.Fatalf("failed=%d started=%d, want 3 and 3", c.Failed, started.Load())
	}
	if !errors.Is(out.Stopped, ErrMaxFailures) || out.Stopped.Error() != "max-failures (3) reached" {
		t.Fatalf("Stopped = %v", out.Stopped)
	}
	for _, r := range out.Results[3:] {
		if r.Status != Skipped || r.Reason != out.Stopped.Error() {
			t.Fatalf("tenant after the stop: %+v", r)
		}
	}
}

func TestRunCanaryFailureLeavesOthersUntouched(t *testing.T) {
	var touched sync.Map
	work := func(ctx context.Context, tn tenant.Tenant) (Status, Detail, error) {
		touched.Store(tn.ID, true)
		if tn.ID == "t001" {
			return "", nil, errors.New("bad migration")
		}
		return Succeeded, nil, nil
	}
	out := Run(context.Background(), Options{Concurrency: 8, CanaryCount: 2}, fixed(30), work)
	for _, tn := range fixed(30)[2:] {
		if _, ok := touched.Load(tn.ID); ok {
			t.Fatalf("%s was touched although a canary failed", tn.ID)
		}
	}
	m := byID(out)
	if !m["t000"].Canary || !m["t001"].Canary || m["t002"].Canary {
		t.Fatal("the first two tenants must be the canaries")
	}
	if m["t001"].Status != Failed || m["t000"].Status != Succeeded {
		t.Fatalf("canaries: %+v %+v", m["t000"], m["t001"])
	}
	if c := Count(out.Results); c.Skipped != 28 {
		t.Fatalf("skipped %d, want 28 (%+v)", c.Skipped, c)
	}
	if !errors.Is(out.Stopped, ErrCanaryFailed) || out.Stopped.Error() != "canary failed: name-t001 (t001)" {
		t.Fatalf("Stopped = %v, want the canary that failed", out.Stopped)
	}
}

func TestRunCanaryGlobsRunFirst(t *testing.T) {
	var mu sync.Mutex
	var order []string
	work := func(ctx context.Context, tn tenant.Tenant) (Status, Detail, error) {
		mu.Lock()
		order = append(order, tn.ID)
		mu.Unlock()
		return Succeeded, nil, nil
	}
	// the canary is the last tenant listed: nothing else may start before it.
	out := Run(context.Background(), Options{Concurrency: 4, CanaryGlobs: []string{"name-t019"}}, fixed(20), work)
	if c := Count(out.Results); c.Succeeded != 20 {
		t.Fatalf("counts %+v", c)
	}
	if order[0] != "t019" {
		t.Fatalf("first started %s, want the canary t019", order[0])
	}
}

func TestRunCancelLetsInFlightFinishWithinGrace(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 100)
	work := func(wctx context.Context, tn tenant.Tenant) (Status, Detail, error) {
		started <- struct{}{}
		if tn.ID == "t000" {
			time.Sleep(50 * time.Millisecond) // finishes inside the grace period
			return Succeeded, nil, nil
		}
		<-wctx.Done() // never finishes on its own
		return "", nil, wctx.Err()
	}
	go func() {
		<-started
		<-started
		cancel()
	}()
	begin := time.Now()
	out := Run(ctx, Options{Concurrency: 2, Grace: 300 * time.Millisecond}, fixed(10), work)
	if time.Since(begin) > 5*time.Second {
		t.Fatalf("cancelled run took %s", time.Since(begin))
	}
	m := byID(out)
	if !out.Cancelled || m["t000"].Status != Succeeded || m["t001"].Status != Cancelled {
		t.Fatalf("cancelled=%v t000=%s t001=%s", out.Cancelled, m["t000"].Status, m["t001"].Status)
	}
	for _, tn := range fixed(10)[2:] {
		if st := m[tn.ID].Status; st != Skipped && st != "" {
			t.Fatalf("%s = %s, want skipped", tn.ID, st)
		}
	}
}

func TestRunTimeoutPanicAndResolveErrorsStayWithTheirTenant(t *testing.T) {
	src := tenant.SourceFunc(func(ctx context.Context, yield func(tenant.Tenant) bool) error {
		yield(tenant.Tenant{ID: "slow"})
		yield(tenant.Tenant{ID: "panics"})
		yield(tenant.Tenant{ID: "unresolved", Resolve: func(context.Context) (string, error) { return "", errors.New("connection_uri: 404") }})
		yield(tenant.Tenant{ID: "fine"})
		return nil
	})
	work := func(ctx context.Context, tn tenant.Tenant) (Status, Detail, error) {
		switch tn.ID {
		case "slow":
			<-ctx.Done()
			return "", nil, ctx.Err()
		case "panics":
			panic("nil map")
		}
		return UpToDate, nil, nil
	}
	out := Run(context.Background(), Options{TenantTimeout: 100 * time.Millisecond}, src, work)
	m := byID(out)
	if m["slow"].Status != Failed || m["panics"].Status != Failed || m["unresolved"].Status != Failed || m["fine"].Status != UpToDate {
		t.Fatalf("statuses: %+v", m)
	}
	if got := m["slow"].Err.Error(); got[:9] != "timed out" {
		t.Fatalf("timeout error %q", got)
	}
}

func TestRunReportsSourceError(t *testing.T) {
	out := Run(context.Background(), Options{}, failingAfter(fixed(3), errors.New("page 2: 500")),
		func(ctx context.Context, tn tenant.Tenant) (Status, Detail, error) { return Succeeded, nil, nil })
	if out.SourceErr == nil || Count(out.Results).Succeeded != 3 {
		t.Fatalf("want the 3 found tenants done and the source error kept: %+v", out)
	}
}

// idDetail is a Detail carrying the tenant's id, to check results keep it.
type idDetail string

func (d idDetail) Cells() []string { return []string{string(d)} }

// A canary that selects nothing must not let the fleet run without one.
func TestCanaryGlobsMatchingNothingStartNoTenant(t *testing.T) {
	var started atomic.Int32
	work := func(ctx context.Context, tn tenant.Tenant) (Status, Detail, error) {
		started.Add(1)
		return Succeeded, nil, nil
	}
	out := Run(context.Background(), Options{CanaryGlobs: []string{"no-such-*"}}, fixed(5), work)
	if !errors.Is(out.Stopped, ErrNoCanaryMatch) || started.Load() != 0 {
		t.Fatalf("Stopped = %v, started %d: want ErrNoCanaryMatch and 0", out.Stopped, started.Load())
	}
	if c := Count(out.Results); c.Skipped != 5 {
		t.Fatalf("counts %+v, want 5 skipped", c)
	}
}

// A mode may leave a tenant for another run: skipped, with its reason.
func TestWorkMaySkipWithReason(t *testing.T) {
	work := func(ctx context.Context, tn tenant.Tenant) (Status, Detail, error) {
		return Skipped, nil, errors.New("left for the next run")
	}
	out := Run(context.Background(), Options{}, fixed(2), work)
	for _, r := range out.Results {
		if r.Status != Skipped || r.Reason != "left for the next run" || r.Err != nil {
			t.Fatalf("result %+v: want skipped with the reason", r)
		}
	}
}

// A mode's own figures ride on every progress line.
func TestProgressNote(t *testing.T) {
	buf := syncio.NewBuffer()
	work := func(ctx context.Context, tn tenant.Tenant) (Status, Detail, error) {
		time.Sleep(30 * time.Millisecond)
		return Succeeded, nil, nil
	}
	Run(context.Background(), Options{Concurrency: 1, Progress: buf, ProgressEvery: 10 * time.Millisecond, ProgressNote: func() string { return "12 MiB dumped" }}, fixed(3), work)
	out := buf.String()
	if !strings.Contains(out, "progress: ") || !strings.Contains(out, "; 12 MiB dumped\n") {
		t.Fatalf("progress lines lack the note:\n%s", out)
	}
}
