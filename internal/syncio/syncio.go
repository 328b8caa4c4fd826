// Package syncio is the one mutex-guarded writer of pgfleet: the log is
// written from the runner, the sources and the mask commands at once, and
// dbmate writes its log from a goroutine of its own.
package syncio

import (
	"bytes"
	"io"
	"sync"
)

// Writer serialises writes to an io.Writer: each Write reaches it whole.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter wraps w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (l *Writer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Buffer is a bytes.Buffer safe for concurrent writes and reads.
type Buffer struct {
	Writer
	buf bytes.Buffer
}

// NewBuffer returns an empty Buffer.
func NewBuffer() *Buffer {
	b := &Buffer{}
	b.w = &b.buf
	return b
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
