package vectors

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"unsafe"
	"weak"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
)

func TestKnownUsers_BoundedAndRemembersRecentOnes(t *testing.T) {
	k := newKnownUsers(100)
	for i := range 1000 {
		k.written(fmt.Sprint("u", i), false, true)
	}
	if n := len(k.cur) + len(k.old); n > 100 {
		t.Fatalf("%d users remembered, capacity 100", n)
	}
	if !k.remembered("u999") || !k.remembered("u950") || k.remembered("u0") {
		t.Error("the most recent users must be remembered, the oldest forgotten")
	}
}

func TestKnownUsers_LearnsWhetherUnrememberedUsersAreNew(t *testing.T) {
	k := newKnownUsers(1000)
	for i := range 100 {
		k.written(fmt.Sprint("new", i), false, true)
	}
	if !k.createFirst("stranger") || k.createFirst("new5") {
		t.Error("after many new users: create first for strangers, ADD first for remembered users")
	}
	for i := range 200 {
		k.written(fmt.Sprint("old", i), false, false) // existed, e.g. after a restart
	}
	if k.createFirst("stranger") {
		t.Error("after many existing-but-unremembered users: ADD first")
	}
}

// New users cost one call each once the processor has seen that
// unremembered users are new; remembered users one call each.
func TestProcess_NewUsersCostOneCallOnceLearned(t *testing.T) {
	st := newMemStore()
	sp := open(t, mustProcessor(t, st, Config{Concurrency: 1}))
	batch := func(first, users int) {
		var recs []consumers.Record
		for i := range users {
			recs = append(recs, rec(first+i, event.TypeClick, fmt.Sprint("user-", i), testNow, map[string]float64{"a": 1}))
		}
		if _, err := sp.Process(context.Background(), batchOf(recs...)); err != nil {
			t.Fatal(err)
		}
	}
	batch(1, 400)
	calls := st.count("add") + st.count("put") + st.count("get")
	if calls > 400+60 {
		t.Errorf("%d calls for 400 new users, want close to 400", calls)
	}
	batch(1000, 400)
	if again := st.count("add") + st.count("put") + st.count("get") - calls; again != 400 {
		t.Errorf("%d calls for 400 remembered users, want 400", again)
	}
	if v := vec(t, st, "user-7")["a"][0]; !near(v, 2) {
		t.Errorf("user-7 clicks %v, want 2", v)
	}
}

// A remembered user id must not keep the record it was decoded from alive:
// an event's strings share one copy of the whole record.
func TestKnownUsers_DoNotKeepTheirRecords(t *testing.T) {
	k := newKnownUsers(100)
	rec := make([]byte, 64<<10)
	copy(rec[len(rec)-3:], "u-1")
	freed := weak.Make(&rec[0])
	user := unsafe.String(&rec[len(rec)-3], 3) // what the decoder hands: a piece of the record
	k.written(user, false, true)
	rec, user = nil, ""
	runtime.GC()
	runtime.GC()
	if freed.Value() != nil {
		t.Fatal("a remembered user id keeps its 64 KiB record alive")
	}
	if !k.remembered("u-1") {
		t.Fatal("u-1 not remembered")
	}
}
