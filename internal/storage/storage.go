// Package storage is where backups live: an S3 bucket (storage/s3) or a
// local folder (storage/dir), behind one small interface so the backup and
// restore modes never learn which: storage/destination opens the one a
// destination input names, and is the only package besides the tests that
// imports a backend. Keys are slash-separated paths relative
// to the destination's prefix, e.g. "acme-prj-123/20261122T030000Z.dump.zst".
package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// Store holds objects under keys. Implementations must make a Put
// all-or-nothing: an object is visible only once it is complete. Keys follow
// CheckKey and prefixes CheckPrefix; errors are *Error.
type Store interface {
	// Put streams r to key. The object appears only if r reaches EOF without
	// error and the upload completes; on any failure (r's error, ctx
	// cancelled, the store refusing) nothing appears under key and any
	// partial upload is cleaned up on a context of its own, not ctx. It
	// returns the bytes stored.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Get opens key for reading; ErrNotFound when there is no such object.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns every complete object whose key starts with prefix,
	// sorted by key.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Pending lists unfinished uploads under prefix (S3 multipart uploads,
	// temp files in a folder), so debris of a killed run can be found.
	Pending(ctx context.Context, prefix string) ([]Upload, error)
	// Abort discards an unfinished upload found by Pending; one that is
	// already gone is not an error.
	Abort(ctx context.Context, u Upload) error
	// String names the destination for people, without credentials.
	String() string
}

// Object is one complete object.
type Object struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// Upload is one unfinished upload.
type Upload struct {
	Key       string
	ID        string // S3 upload id, or the temp file's name
	Initiated time.Time
}

// ErrNotFound is returned by Get for a key that holds no object.
var ErrNotFound = errors.New("object not found")
