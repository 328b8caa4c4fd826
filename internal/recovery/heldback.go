package recovery

import "io"

// heldBack reads src but keeps its last byte until src has ended and
// verify passed: a reader downstream cannot see the end of the stream, nor
// its last byte, before the stream is proven good. err is why it stopped,
// when it did not end well.
type heldBack struct {
	src      io.Reader
	verify   func() error
	diagnose func(error) error // explains a failed read
	last     []byte            // the byte held back (0 or 1)
	done     bool              // src ended and verify passed: last may go
	err      error
}

func (h *heldBack) Read(p []byte) (int, error) {
	if h.err != nil {
		return 0, h.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if h.done {
		if len(h.last) == 0 {
			return 0, io.EOF
		}
		p[0] = h.last[0]
		h.last = nil
		return 1, nil
	}
	for {
		// Read into p after the held byte, then hold back p's new last
		// byte.
		n := copy(p, h.last)
		k, err := h.src.Read(p[n:])
		total := n + k
		if total > 0 {
			h.last = append(h.last[:0], p[total-1])
			total--
		}
		switch {
		case err == io.EOF:
			if verr := h.verify(); verr != nil {
				h.err = verr
				return 0, verr
			}
			h.done = true
			if total > 0 {
				return total, nil
			}
			return h.Read(p)
		case err != nil:
			h.err = h.diagnose(err)
			return 0, h.err
		case total > 0:
			return total, nil
		}
	}
}
