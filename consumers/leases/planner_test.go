package leases_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/clickstream-go/clickstream/consumers/leases"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

const dur = 10 * time.Second

// lease builds a lease: owner "" = free.
func lease(id, owner string, parents ...string) leases.Lease {
	l := leases.Lease{App: "app", ShardID: id, Owner: owner, Parents: parents}
	if owner != "" {
		l.Epoch, l.Heartbeat = 1, 1
	}
	return l
}

func finished(l leases.Lease) leases.Lease { l.Finished = true; l.Owner = ""; return l }

func takes(d leases.Decision) []string {
	var out []string
	for _, t := range d.Take {
		out = append(out, t.Lease.ShardID+":"+string(t.Reason))
	}
	return out
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name    string
		owner   string
		leases  []leases.Lease
		held    map[string]int64
		listed  []string // nil: unknown
		steals  int
		prevAge time.Duration // how long every lease has looked unchanged (0: first sight)
		want    []string      // takes, sorted (the free list starts at an owner-specific offset)
		lost    []string
		del     []string
		target  int
		blocked int
	}{
		{name: "EmptyTableTakesNothing", owner: "b", want: nil},
		{
			name: "AloneTakesEveryFreeLease", owner: "a", steals: 1,
			leases: []leases.Lease{lease("s0", ""), lease("s1", ""), lease("s2", ""), lease("s3", "")},
			want:   []string{"s0:free", "s1:free", "s2:free", "s3:free"}, target: 4,
		},
		{
			name: "NewcomerStealsOneFromTheOnlyOwner", owner: "b", steals: 1,
			leases: []leases.Lease{lease("s0", "a"), lease("s1", "a"), lease("s2", "a"), lease("s3", "a")},
			want:   []string{"s0:steal"}, target: 2,
		},
		{
			name: "StealsWhileVictimHasTwoMore", owner: "b", steals: 1,
			leases: []leases.Lease{lease("s0", "a"), lease("s1", "a"), lease("s2", "a"), lease("s3", "b")},
			held:   map[string]int64{"s3": 1},
			want:   []string{"s0:steal"}, target: 2,
		},
		{
			name: "BalancedTableNeverChurns", owner: "b", steals: 1,
			leases: []leases.Lease{lease("s0", "a"), lease("s1", "a"), lease("s2", "b"), lease("s3", "b")},
			held:   map[string]int64{"s2": 1, "s3": 1},
			want:   nil, target: 2,
		},
		{
			name: "OffByOneIsBalanced", owner: "c", steals: 1,
			leases: []leases.Lease{lease("s0", "a"), lease("s1", "a"), lease("s2", "b"), lease("s3", "c")},
			held:   map[string]int64{"s3": 1},
			want:   nil, target: 2,
		},
		{
			name: "ThirdOwnerStealsFromMostLoadedLowestId", owner: "c", steals: 1,
			leases: []leases.Lease{lease("s0", "b"), lease("s1", "b"), lease("s2", "a"), lease("s3", "a")},
			want:   []string{"s2:steal"}, target: 2,
		},
		{
			name: "StealingDisabled", owner: "b", steals: 0,
			leases: []leases.Lease{lease("s0", "a"), lease("s1", "a"), lease("s2", "a"), lease("s3", "a")},
			want:   nil, target: 2,
		},
		{
			name: "SeveralStealsPerRoundStopAtBalance", owner: "b", steals: 5,
			leases: []leases.Lease{lease("s0", "a"), lease("s1", "a"), lease("s2", "a"), lease("s3", "a"), lease("s4", "a")},
			want:   []string{"s0:steal", "s1:steal"}, target: 3,
		},
		{
			name: "FreshSightOfStaleLeaseIsNotExpiry", owner: "b", steals: 0, prevAge: 0,
			leases: []leases.Lease{lease("s0", "a"), lease("s1", "a")},
			want:   nil, target: 1,
		},
		{
			name: "UnchangedHeartbeatForLeaseDurationIsExpiry", owner: "b", steals: 0, prevAge: dur,
			leases: []leases.Lease{lease("s0", "a"), lease("s1", "a")},
			want:   []string{"s0:expired", "s1:expired"}, target: 2,
		},
		{
			name: "FreeLeasesOnlyUpToFairShare", owner: "b", steals: 1,
			leases: []leases.Lease{lease("s0", "a"), lease("s1", "a"), lease("s2", ""), lease("s3", ""), lease("s4", ""), lease("s5", "")},
			want:   []string{"s3:free", "s4:free", "s5:free"}, target: 3,
		},
		{
			name: "NoStealInARoundThatTookFreeLeases", owner: "b", steals: 1,
			leases: []leases.Lease{lease("s0", "a"), lease("s1", "a"), lease("s2", "a"), lease("s3", "a"), lease("s4", "")},
			want:   []string{"s4:free"}, target: 3,
		},
		{
			name: "OwnLeasesNotRunningAreTakenBackFirst", owner: "a", steals: 1,
			leases: []leases.Lease{lease("s0", "a"), lease("s1", "a"), lease("s2", "")},
			want:   []string{"s0:own", "s1:own", "s2:free"}, target: 3,
		},
		{
			name: "ChildWaitsForUnfinishedParent", owner: "a", listed: []string{"p", "c1", "c2"},
			leases: []leases.Lease{lease("p", "b"), lease("c1", "", "p"), lease("c2", "", "p")},
			want:   nil, target: 1, blocked: 2,
		},
		{
			name: "ChildStartsAfterParentFinished", owner: "a", listed: []string{"p", "c1", "c2"},
			leases: []leases.Lease{finished(lease("p", "")), lease("c1", "", "p"), lease("c2", "", "p")},
			want:   []string{"c1:free", "c2:free"}, target: 2,
		},
		{
			name: "MergedChildWaitsForBothParents", owner: "a", listed: []string{"p1", "p2", "c"},
			leases: []leases.Lease{finished(lease("p1", "")), lease("p2", ""), lease("c", "", "p1", "p2")},
			want:   []string{"p2:free"}, target: 1, blocked: 1,
		},
		{
			name: "MergedChildStartsAfterBothParents", owner: "a", listed: []string{"p1", "p2", "c"},
			leases: []leases.Lease{finished(lease("p1", "")), finished(lease("p2", "")), lease("c", "", "p1", "p2")},
			want:   []string{"c:free"}, target: 1,
		},
		{
			name: "ParentListedWithoutLeaseBlocksChild", owner: "a", listed: []string{"p", "c"},
			leases: []leases.Lease{lease("c", "", "p")},
			want:   nil, blocked: 1,
		},
		{
			name: "ParentUnknownWithoutListingBlocksChild", owner: "a",
			leases: []leases.Lease{lease("c", "", "p")},
			want:   nil, blocked: 1,
		},
		{
			name: "ParentPastRetentionDoesNotBlockChild", owner: "a", listed: []string{"c"},
			leases: []leases.Lease{lease("c", "", "p")},
			want:   []string{"c:free"}, target: 1,
		},
		{
			name: "FinishedLeaseOfVanishedShardIsGarbage", owner: "a", listed: []string{"s1"},
			leases: []leases.Lease{finished(lease("s0", "")), finished(lease("s1", ""))},
			del:    []string{"s0"},
		},
		{
			name: "HeldLeasesTakenByOthersOrFinishedOrGoneAreLost", owner: "a",
			leases: []leases.Lease{lease("s0", "b"), finished(lease("s1", "")), lease("s2", "a"), lease("s3", "a")},
			held:   map[string]int64{"s0": 1, "s1": 1, "s2": 1, "s3": 7, "s9": 1},
			lost:   []string{"s0", "s1", "s3", "s9"}, target: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := leases.PlanInput{
				Owner: tc.owner, Leases: tc.leases, Held: tc.held, Now: t0,
				LeaseDuration: dur, MaxSteals: tc.steals,
			}
			if tc.listed != nil {
				in.Listed = map[string]bool{}
				for _, id := range tc.listed {
					in.Listed[id] = true
				}
			}
			var prev leases.Observations
			if tc.prevAge > 0 {
				_, prev = leases.Plan(leases.PlanInput{Owner: tc.owner, Leases: tc.leases, Now: t0.Add(-tc.prevAge), LeaseDuration: dur}, nil)
			}
			d, obs := leases.Plan(in, prev)
			got := takes(d)
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("takes = %v, want %v", got, tc.want)
			}
			if !slices.Equal(d.Lost, tc.lost) {
				t.Errorf("lost = %v, want %v", d.Lost, tc.lost)
			}
			if !slices.Equal(d.Delete, tc.del) {
				t.Errorf("delete = %v, want %v", d.Delete, tc.del)
			}
			if d.Target != tc.target || d.Blocked != tc.blocked {
				t.Errorf("target/blocked = %d/%d, want %d/%d", d.Target, d.Blocked, tc.target, tc.blocked)
			}
			if len(obs) != len(tc.leases) {
				t.Errorf("observations of %d leases, want %d", len(obs), len(tc.leases))
			}
		})
	}
}

func TestPlan_HeartbeatChangeRestartsExpiryClock(t *testing.T) {
	l := lease("s0", "a")
	_, obs := leases.Plan(leases.PlanInput{Owner: "b", Leases: []leases.Lease{l}, Now: t0, LeaseDuration: dur}, nil)
	l.Heartbeat++
	_, obs = leases.Plan(leases.PlanInput{Owner: "b", Leases: []leases.Lease{l}, Now: t0.Add(dur - time.Second), LeaseDuration: dur}, obs)
	d, _ := leases.Plan(leases.PlanInput{Owner: "b", Leases: []leases.Lease{l}, Now: t0.Add(dur + time.Second), LeaseDuration: dur}, obs)
	if len(d.Take) != 0 {
		t.Fatalf("took %v: a lease renewed %v ago is not expired", takes(d), 2*time.Second)
	}
	d, _ = leases.Plan(leases.PlanInput{Owner: "b", Leases: []leases.Lease{l}, Now: t0.Add(2*dur - time.Second), LeaseDuration: dur}, obs)
	if got := takes(d); !slices.Equal(got, []string{"s0:expired"}) {
		t.Fatalf("takes = %v, want the expired lease", got)
	}
}

// TestPlan_ConvergesWithBoundedChurn runs whole clusters through the planner
// against a MemoryStore: processes join one at a time, planning in turn, and
// the table must reach balance (counts differ by at most one) with few moves.
func TestPlan_ConvergesWithBoundedChurn(t *testing.T) {
	ctx := context.Background()
	for _, shards := range []int{1, 2, 4, 7, 16, 33} {
		for _, procs := range []int{1, 2, 3, 5, 8} {
			t.Run(fmt.Sprintf("%dshards_%dprocs", shards, procs), func(t *testing.T) {
				s := leases.NewMemoryStore()
				for i := range shards {
					if err := s.Create(ctx, leases.Lease{App: "app", ShardID: fmt.Sprintf("s%03d", i)}); err != nil {
						t.Fatal(err)
					}
				}
				type proc struct {
					id   string
					held map[string]int64
					obs  leases.Observations
				}
				var ps []*proc
				now := t0
				moves, rounds := 0, 0
				round := func() {
					rounds++
					now = now.Add(dur / 3)
					for _, p := range ps {
						ls, _ := s.List(ctx, "app")
						var d leases.Decision
						d, p.obs = leases.Plan(leases.PlanInput{
							Owner: p.id, Leases: ls, Held: p.held, Now: now, LeaseDuration: dur, MaxSteals: 1,
						}, p.obs)
						for _, id := range d.Lost {
							delete(p.held, id)
						}
						for _, tk := range d.Take {
							nl, err := s.Take(ctx, tk.Lease, p.id)
							if errors.Is(err, leases.ErrConflict) {
								continue
							}
							if err != nil {
								t.Fatal(err)
							}
							if tk.Reason == leases.TakeSteal {
								moves++
							}
							p.held[nl.ShardID] = nl.Epoch
						}
						// Renew everything held, as the runtime does each round.
						for id, epoch := range p.held {
							if _, err := s.Renew(ctx, leases.Lease{App: "app", ShardID: id, Owner: p.id, Epoch: epoch}); err != nil {
								delete(p.held, id)
							}
						}
					}
				}
				balanced := func() bool {
					ls, _ := s.List(ctx, "app")
					count := map[string]int{}
					for _, l := range ls {
						if l.Owner == "" {
							return false
						}
						count[l.Owner]++
					}
					lo, hi := shards, 0
					for _, p := range ps {
						lo, hi = min(lo, count[p.id]), max(hi, count[p.id])
					}
					return hi-lo <= 1
				}
				for i := range procs {
					ps = append(ps, &proc{id: fmt.Sprintf("p%d", i), held: map[string]int64{}})
					start, movesBefore := rounds, moves
					for !balanced() {
						round()
						if rounds-start > 4*shards+6 {
							t.Fatalf("no balance %d rounds after p%d joined", rounds-start, i)
						}
					}
					// A join moves at most the newcomer's fair share.
					if share := (shards + i) / (i + 1); moves-movesBefore > share {
						t.Fatalf("p%d joining moved %d leases, fair share %d", i, moves-movesBefore, share)
					}
				}
				// Once balanced, nothing moves any more.
				before := moves
				for range 10 {
					round()
				}
				if moves != before {
					t.Fatalf("%d leases moved in a balanced cluster", moves-before)
				}
			})
		}
	}
}
