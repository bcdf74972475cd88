package leases

import (
	"cmp"
	"hash/fnv"
	"slices"
	"time"
)

// PlanInput is what Plan decides from: one consistent read of the lease
// table plus what this process knows about itself.
type PlanInput struct {
	Owner  string           // this process's owner id
	Leases []Lease          // every lease of the application (Store.List)
	Held   map[string]int64 // shard id → epoch of each lease this process is running now
	// Listed is the set of shard ids in the stream's last complete ListShards;
	// nil when unknown (then a missing parent lease blocks its children).
	Listed map[string]bool
	Now    time.Time
	// LeaseDuration: a lease whose heartbeat has not moved for this long, as
	// seen by this process's own clock, is expired.
	LeaseDuration time.Duration
	// MaxSteals bounds leases taken from live owners per round; 0 disables stealing.
	MaxSteals int
}

// Observations remember when this process last saw each lease change, so
// expiry is judged on the local clock only: no clock synchronisation between
// processes is assumed (KCL's approach). Plan returns the updated copy.
type Observations map[string]Observation

// Observation is the last seen fencing state of one lease and when it was first seen.
type Observation struct {
	Owner     string
	Epoch     int64
	Heartbeat int64
	Since     time.Time
}

// TakeReason says why Plan takes a lease.
type TakeReason string

// Reasons for taking a lease.
const (
	TakeFree    TakeReason = "free"    // nobody holds it
	TakeExpired TakeReason = "expired" // its holder stopped renewing
	TakeOwn     TakeReason = "own"     // held under this owner id but not running (restart with a fixed id)
	TakeSteal   TakeReason = "steal"   // from the most loaded live owner, to balance
)

// Take is one lease to take, as read (Store.Take needs the fencing fields).
type Take struct {
	Lease  Lease
	Reason TakeReason
}

// Decision is what Plan tells the runtime to do this round.
type Decision struct {
	Take []Take
	// Lost lists held shards whose lease now belongs to someone else, or to
	// this owner id at another epoch (two processes sharing an owner id), or
	// is finished or gone: stop them without checkpointing.
	Lost []string
	// Delete lists finished leases of shards no longer in the stream (past
	// retention): garbage.
	Delete []string
	// Target is this process's fair share: ceil(active leases / live owners).
	Target int
	// Owners is the number of live owners, this process included.
	Owners int
	// Blocked counts leases waiting for a parent shard to finish.
	Blocked int
}

// Plan decides which leases this process takes in one round. It is a pure
// function of its input and the previous observations (and returns the new
// ones), so every balancing rule is table-tested without a server:
//
//   - A lease is active when it is not finished and every parent is finished
//     (or gone from both the table and the stream): children never start
//     before their parents are read to SHARD_END and checkpointed.
//   - Own leases not running (a restart with a fixed owner id) are taken back
//     at once; free and expired leases are taken up to the fair share,
//     ceil(active / owners), where owners are the holders of live leases plus
//     this process.
//   - Only when nothing free or expired was taken does a process steal, and
//     only from the most loaded owner, and only while that owner holds at
//     least two more leases than this process: balanced tables never churn.
//     Each steal is the victim's lowest shard id, so thieves that plan at the
//     same moment collide on one conditional write instead of draining a
//     victim; at most MaxSteals leases move per round.
func Plan(in PlanInput, prev Observations) (Decision, Observations) {
	obs := make(Observations, len(in.Leases))
	byID := make(map[string]Lease, len(in.Leases))
	for _, l := range in.Leases {
		byID[l.ShardID] = l
		o, ok := prev[l.ShardID]
		if !ok || o.Owner != l.Owner || o.Epoch != l.Epoch || o.Heartbeat != l.Heartbeat {
			o = Observation{Owner: l.Owner, Epoch: l.Epoch, Heartbeat: l.Heartbeat, Since: in.Now}
		}
		obs[l.ShardID] = o
	}
	var d Decision
	for id := range in.Held {
		l, ok := byID[id]
		if !ok || l.Owner != in.Owner || l.Epoch != in.Held[id] || l.Finished {
			d.Lost = append(d.Lost, id)
		}
	}
	slices.Sort(d.Lost)

	expired := func(l Lease) bool {
		return !l.Free() && in.Now.Sub(obs[l.ShardID].Since) >= in.LeaseDuration
	}
	parentsDone := func(l Lease) bool {
		for _, p := range l.Parents {
			pl, ok := byID[p]
			if ok && !pl.Finished {
				return false
			}
			if !ok && (in.Listed == nil || in.Listed[p]) {
				return false // parent lease not created yet, or unknown: wait
			}
		}
		return true
	}

	var active, free, own []Lease
	load := map[string][]Lease{} // live owner → its active leases
	mine := 0
	for _, l := range in.Leases {
		if l.Finished {
			if in.Listed != nil && !in.Listed[l.ShardID] {
				d.Delete = append(d.Delete, l.ShardID)
			}
			continue
		}
		if !parentsDone(l) {
			d.Blocked++
			continue
		}
		active = append(active, l)
		switch {
		case l.Owner == in.Owner:
			mine++
			if _, running := in.Held[l.ShardID]; !running {
				own = append(own, l)
			}
		case l.Free() || expired(l):
			free = append(free, l)
		default:
			load[l.Owner] = append(load[l.Owner], l)
		}
	}
	d.Owners = len(load) + 1
	if len(active) == 0 {
		return d, obs
	}
	d.Target = (len(active) + d.Owners - 1) / d.Owners

	for _, l := range own {
		d.Take = append(d.Take, Take{Lease: l, Reason: TakeOwn})
	}
	// Start the free list at an owner-specific offset so processes that start
	// together mostly try different leases instead of colliding on the first.
	if n := len(free); n > 0 {
		h := fnv.New32a()
		_, _ = h.Write([]byte(in.Owner))
		off := int(h.Sum32() % uint32(n))
		free = append(free[off:], free[:off]...)
	}
	took := 0
	for _, l := range free {
		if mine >= d.Target {
			break
		}
		reason := TakeFree
		if !l.Free() {
			reason = TakeExpired
		}
		d.Take = append(d.Take, Take{Lease: l, Reason: reason})
		mine++
		took++
	}
	if took > 0 || in.MaxSteals <= 0 {
		return d, obs
	}
	for range in.MaxSteals {
		victim := ""
		for o, ls := range load {
			if victim == "" || len(ls) > len(load[victim]) || (len(ls) == len(load[victim]) && o < victim) {
				victim = o
			}
		}
		if victim == "" || len(load[victim])-mine < 2 {
			break
		}
		ls := load[victim]
		slices.SortFunc(ls, func(a, b Lease) int { return cmp.Compare(a.ShardID, b.ShardID) })
		d.Take = append(d.Take, Take{Lease: ls[0], Reason: TakeSteal})
		load[victim] = ls[1:]
		mine++
	}
	return d, obs
}
