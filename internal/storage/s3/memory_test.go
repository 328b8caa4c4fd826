package s3

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/storage/storagetest"
)

// TestPutMemory streams 200 MiB from a generator and samples the heap
// while it goes: Put must hold no more than (Concurrency+1) part buffers of
// the largest part size it reached, plus a little for the SDK's requests.
func TestPutMemory(t *testing.T) {
	srv := sharedServer(t)
	const size = 200 << 20
	// The SDK's per-request allocations (signing, XML, HTTP) and the
	// garbage not yet collected; measured at well under this.
	const slack = 16 << 20
	for _, tc := range []struct {
		name     string
		partSize int64
		every    int // parts per doubling
	}{
		{"DefaultParts", DefaultPartSize, partsPerDoubling}, // 25 parts of 8 MiB
		{"GrowingParts", MinPartSize, 4},                    // 5, 10, 20 then 40 MiB parts
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, srv, nil, Options{Prefix: testPrefix(t), PartSize: tc.partSize})
			s.sched.every = tc.every
			var sum, largest int64
			for i := 0; sum < size; i++ {
				largest = s.sched.size(i)
				sum += largest
			}
			bufBound := int64(s.concurrency+1) * largest

			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			base := ms.HeapInuse
			var (
				wg   sync.WaitGroup
				stop = make(chan struct{})
				peak uint64
			)
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ms runtime.MemStats
				for {
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapInuse)
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
					}
				}
			}()
			n, err := s.Put(context.Background(), "mem.dump", storagetest.NewStream(14, size))
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if n != size {
				t.Fatalf("Put = %d bytes, want %d", n, size)
			}
			grew := int64(peak) - int64(base)
			t.Logf("%d MiB streamed, largest part %d MiB: heap in use grew by %.1f MiB at most; part buffers bound (%d+1) x %d MiB = %d MiB, test bound %d MiB",
				size>>20, largest>>20, float64(grew)/(1<<20), s.concurrency, largest>>20, bufBound>>20, (bufBound+slack)>>20)
			if grew > bufBound+slack {
				t.Errorf("heap in use grew by %d MiB, more than (%d+1) x %d MiB + %d MiB", grew>>20, s.concurrency, largest>>20, slack>>20)
			}
			storagetest.AssertSame(t, s, "mem.dump", 14, size)
		})
	}
}
