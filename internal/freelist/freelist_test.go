package freelist

import (
	"runtime"
	"testing"
)

// TestList_KeepsValuesAcrossCollectionsUpToItsSize: what a List keeps
// survives collections (a sync.Pool's would not), and it keeps no more than
// its size.
func TestList_KeepsValuesAcrossCollectionsUpToItsSize(t *testing.T) {
	f := New[*[]byte](2)
	a, b, c := new([]byte), new([]byte), new([]byte)
	f.Put(a)
	f.Put(b)
	f.Put(c) // no room: dropped
	runtime.GC()
	runtime.GC()
	var got []*[]byte
	for {
		v, ok := f.Get()
		if !ok {
			break
		}
		got = append(got, v)
	}
	if len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("kept %v, want the first two values put", got)
	}
}
