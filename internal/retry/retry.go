// Package retry holds what every retry loop of pgfleet shares: a sleep that
// ends with its context.
package retry

import (
	"context"
	"time"
)

// Sleep waits d or until ctx is done, and then returns ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
