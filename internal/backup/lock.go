package backup

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
// or by the bucket's default retention, are kept the same way. A lock that
// cannot be read is an error, never taken for none: prune then fails the
// tenant rather than delete a backup that may be locked.
func (j *Job) lockedUntil(ctx context.Context, b archive.Backup, now time.Time) (time.Time, error) {
	l, ok := j.o.Store.(storage.Locker)
	if !ok {
		return time.Time{}, nil
	}
	may, checkDenied := j.locks.mayLock(ctx, l)
	if !may {
		return time.Time{}, nil
	}
	var until time.Time
	for _, k := range b.Keys() {
		r, err := l.Retention(ctx, k)
		if errors.Is(err, storage.ErrDenied) && checkDenied && !j.o.Lock.On() {
			// Neither the bucket's Object Lock nor the object's lock may
			// be read: credentials from before Object Lock, in a run that
			// asks for none (a failure to answer is no such case: it fails
			// the prune below). Pruning as pgfleet always has loses nothing
			// (on a bucket with Object Lock a delete only adds a marker;
			// restore-include-deleted finds the version), where failing
			// would break every such user's retention; so prune, and say
			// once what could not be told.
			j.locks.warnOnce.Do(func() {
				if j.o.Warn != nil {
					j.o.Warn("retention cannot tell whether backups are locked (%v): pruning as without Object Lock; on a bucket with Object Lock a pruned backup that is still locked is only hidden behind a delete marker", err)
				}
			})
			return time.Time{}, nil
		}
		if err != nil {
			return time.Time{}, err
		}
		if r.Holds(now) && r.Until.After(until) {
			until = r.Until
		}
	}
	return until, nil
}

// lockCheck is whether the destination can hold a lock at all, asked once
// a run by the first tenant to prune a backup. Without it every S3 user,
// Object Lock or not, would pay a GetObjectRetention per object retention
// deletes; a bucket without Object Lock can hold no locked object (and
// Object Lock, once on, cannot be turned off), so one
// GetObjectLockConfiguration a run answers for all of them.
type lockCheck struct {
	mu       sync.Mutex
	asked    bool
	none     bool // the bucket has no Object Lock
	denied   bool // the credentials may not ask (AccessDenied)
	warnOnce sync.Once
}

// mayLock reports whether objects in l may be locked, and whether the
// check was refused. Only a definite "no Object Lock" (storage.ErrNoLock)
// says no. A refused check (credentials without
// s3:GetBucketObjectLockConfiguration) says yes, so each object is still
// asked; like "no", that answer is kept for the run rather than asked again
// by every tenant. A check that failed to answer (a 5xx, throttling, the
// tenant's time running out) says yes and is asked again by the next
// tenant: a passing outage must not decide for the whole run.
func (c *lockCheck) mayLock(ctx context.Context, l storage.Locker) (may, denied bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.asked {
		err := l.CheckLock(ctx)
		c.none = errors.Is(err, storage.ErrNoLock)
		c.denied = errors.Is(err, storage.ErrDenied)
		c.asked = err == nil || c.none || c.denied
	}
	return !c.none, c.denied
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
