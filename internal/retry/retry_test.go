package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelay_DoublesToTheCapWithEqualJitter(t *testing.T) {
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 10: time.Second} {
		for range 200 {
			d := Delay(attempt, 100*time.Millisecond, time.Second)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
	if d := Delay(5, time.Second, 100*time.Millisecond); d < 50*time.Millisecond || d > 100*time.Millisecond {
		t.Fatalf("min above max: %v, want within the cap", d)
	}
}

func TestBackoff_ResetStartsOver(t *testing.T) {
	b := Backoff{Min: 10 * time.Millisecond, Max: time.Second}
	for range 5 {
		b.Next()
	}
	b.Reset()
	if d := b.Next(); d > 10*time.Millisecond {
		t.Fatalf("after Reset: %v, want ≤ Min", d)
	}
}

func TestSleep_EndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep = %v", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
