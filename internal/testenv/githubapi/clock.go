package githubapi

import (
	"context"
	"sync"
	"time"
)

// FakeClock is a clock for tests: Sleep returns at once and moves the time
// forward instead, so minutes of pacing take no real time and every wait
// can be asserted. Hand its Now to Config.Now, and the clock itself to the
// client (it satisfies internal/github's Clock), so that the emulator's
// timestamps and the client's pacing share one time.
type FakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

// NewFakeClock returns a clock that starts at start (a fixed date if zero).
func NewFakeClock(start time.Time) *FakeClock {
	if start.IsZero() {
		start = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	}
	return &FakeClock{now: start}
}

// Now is the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep records d and moves the clock forward by it, unless ctx has ended.
func (c *FakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	if d > 0 {
		c.now = c.now.Add(d)
	}
	return nil
}

// Advance moves the clock forward by d without recording a sleep.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Sleeps returns every duration Sleep was asked for, in order.
func (c *FakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}
