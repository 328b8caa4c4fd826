package backup

import (
	"context"
	"fmt"
	"time"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/report"
	"github.com/pgfleet/pgfleet/internal/storage"
)

// LockedBackup is a backup retention would prune but keeps: its lock
// (S3 Object Lock) has not passed, and deleting it would only hide it
// behind a delete marker.
type LockedBackup struct {
	Stamp string    `json:"backup"`
	Until time.Time `json:"locked_until"`
}

func (l LockedBackup) String() string {
	return l.Stamp + " (locked until " + l.Until.UTC().Format(time.RFC3339) + ")"
}

// lockedUntil is when the last lock on b's objects passes, zero when none
// holds at now (or the store cannot lock). Any store that can lock is
// asked, whether or not this run locks: backups locked by an earlier run,
// or by the bucket's default retention, are kept the same way.
func (j *Job) lockedUntil(ctx context.Context, b archive.Backup, now time.Time) (time.Time, error) {
	l, ok := j.o.Store.(storage.Locker)
	if !ok {
		return time.Time{}, nil
	}
	var until time.Time
	for _, k := range b.Keys() {
		r, err := l.Retention(ctx, k)
		if err != nil {
			return time.Time{}, err
		}
		if r.Holds(now) && r.Until.After(until) {
			until = r.Until
		}
	}
	return until, nil
}

// lockWarning is the warning for a retention shorter than the lock, "" when
// there is none to give.
func lockWarning(o Options) string {
	if !o.Lock.On() || o.RetentionDays >= o.Lock.Days {
		return ""
	}
	return fmt.Sprintf("retention-days (%d) is shorter than object-lock-days (%d): backups past %d days cannot be pruned before their lock passes; "+
		"they are kept and reported as locked until then", o.RetentionDays, o.Lock.Days, o.RetentionDays)
}

// describeLock is the lock part of Describe.
func describeLock(l storage.Lock) string {
	if !l.On() {
		return ""
	}
	return fmt.Sprintf(", each dump and manifest locked (%s) for %s", l.Mode, report.Plural(l.Days, "day", "days"))
}
