package destination

import (
	"context"
	"errors"
	"fmt"

	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/s3"
)

// ReadLock reads the Object Lock inputs: both or neither. Problems are
// recorded in in.
func ReadLock(in *input.Values) storage.Lock {
	modeSet, daysSet := in.IsSet(InputObjectLockMode), in.IsSet(InputObjectLockDays)
	switch {
	case !modeSet && !daysSet:
		return storage.Lock{}
	case !daysSet:
		in.Bad(InputObjectLockDays, "required with object-lock-mode: how many days each object stays locked (1 to %d)", s3.MaxLockDays)
	case !modeSet:
		in.Bad(InputObjectLockMode, "required with object-lock-days: governance or compliance")
	}
	var l storage.Lock
	if modeSet {
		l.Mode = storage.LockMode(in.OneOf(InputObjectLockMode, string(storage.LockGovernance), string(storage.LockCompliance)))
	}
	if daysSet {
		l.Days = in.Int(InputObjectLockDays, 1, s3.MaxLockDays, "days")
	}
	if l.Mode == "" || l.Days == 0 {
		return storage.Lock{} // already reported
	}
	return l
}

// CheckLock asks the store whether it can lock, when w asks for a lock. A
// bucket without Object Lock is bad input (exit 2, naming object-lock-mode
// and the bucket); failing to ask is an outage.
func CheckLock(ctx context.Context, s storage.Store, w WriteOptions) error {
	if !w.Lock.On() {
		return nil
	}
	l, ok := s.(storage.Locker)
	if !ok { // Open refuses a lock for any store that cannot; never silently unlocked
		return &input.Error{Input: InputObjectLockMode.Name, Problem: fmt.Sprintf("%s cannot lock what it writes", s)}
	}
	err := l.CheckLock(ctx)
	if errors.Is(err, storage.ErrNoLock) {
		return &input.Error{Input: InputObjectLockMode.Name, Err: err}
	}
	return err
}
