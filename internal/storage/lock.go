package storage

import (
	"context"
	"errors"
	"time"
)

// Lock is a retention put on every object a store writes (S3 Object
// Lock): until it passes, no one, the job's own credentials included, can
// delete or overwrite that version. The zero Lock is none.
type Lock struct {
	Mode LockMode
	Days int // each object is locked for this many days from its upload
}

// LockMode is how strict a lock is.
type LockMode string

const (
	// LockGovernance can be lifted early by whoever holds the
	// s3:BypassGovernanceRetention permission.
	LockGovernance LockMode = "governance"
	// LockCompliance cannot be lifted by anyone, root included, until it
	// passes.
	LockCompliance LockMode = "compliance"
)

// On reports whether l locks anything.
func (l Lock) On() bool { return l.Mode != "" }

// ErrNoLock is wrapped by Locker.CheckLock when the store cannot lock what
// it writes (a bucket created without Object Lock).
var ErrNoLock = errors.New("object lock is not enabled")

// ErrDenied is wrapped by Locker's errors when the store refused to say
// (credentials without the permission), as against failing to answer:
// retention tells the two apart (see backup's lockCheck).
var ErrDenied = errors.New("access denied")

// Retention is the lock an object version carries; the zero value is none.
type Retention struct {
	Mode  LockMode
	Until time.Time
}

// Holds reports whether the retention still protects the object at now.
func (r Retention) Holds(now time.Time) bool { return r.Mode != "" && r.Until.After(now) }

// Locker is a store that can lock what it writes (an S3 bucket with Object
// Lock). A store that cannot lock does not implement it: a folder refuses
// the lock inputs instead, so a lock the user asked for never silently
// switches off.
type Locker interface {
	// CheckLock asks whether the store can lock what it writes: nil when
	// it can, an error wrapping ErrNoLock when it cannot, any other error
	// when asking failed.
	CheckLock(ctx context.Context) error
	// Retention is the lock on key's current version (zero when none).
	Retention(ctx context.Context, key string) (Retention, error)
}

// Versioned is a store that keeps the versions a plain Delete hides (an S3
// bucket with versioning, which Object Lock turns on): the delete only
// adds a marker, and the version stays.
type Versioned interface {
	// IncludingDeleted is a read-only view of the store in which a key
	// hidden by a delete lists and reads as its newest version that is not
	// a delete marker (a key that was never deleted reads as it is). Its
	// Put, Delete and Abort refuse.
	IncludingDeleted() Store
}

// ErrReadOnly is returned by the write methods of a read-only view.
var ErrReadOnly = errors.New("read-only view of the store")
