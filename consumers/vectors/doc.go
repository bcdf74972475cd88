// Package vectors is the user-vector consumer: it turns clicks and
// impressions into one DynamoDB item per user holding, per feature, the
// exponentially decayed sums of click and impression weights (half-life H in
// event time), updated within a second of the click, and serves them to
// recommendation services through GET /v1/users/{user_id}/vector, the Go
// client in package client and `clickstream vectors get`.
//
// # Writes
//
// Process groups a batch by user and applies each user's events with one
// conditional UpdateItem of ADDs (forward decay makes updates commutative
// sums; see decay.go for the landmark grid and the fixed-point numbers that
// keep DynamoDB's exact 38-digit arithmetic from ever rejecting a sum).
// Users are written in parallel, at most Config.Concurrency calls in flight
// per process; throttling is retried with jittered backoff; Process returns
// only when every write of the batch succeeded.
//
// Exactly-once effect: each item keeps, per shard, the position of the last
// event applied from that shard (a string, since sequence numbers exceed
// DynamoDB's numbers). The ADD is conditioned on that guard being before the
// first event it carries; when the condition fails the item comes back with
// the error (ReturnValuesOnConditionCheckFailure), and the write is retried
// with only the events after the guard — or dropped when none are left. So a
// replay cut into different batches after a crash changes nothing, event by
// event, not batch by batch.
//
// # Item layout (table clickstream-user-vectors, hash key user_id)
//
//	user_id  S   the user
//	c        M   feature -> N  decayed click sum relative to lm (fixed point, 20 decimals)
//	i        M   feature -> N  same for impressions; keys(i) == keys(c)
//	g        M   shard id -> S last applied position: 3-digit length + sequence + "." + 19-digit sub-sequence
//	lm       N   landmark, epoch ms: a point of the grid T0 + k·8·H (T0 = 2020-01-01T00:00Z)
//	hl       N   half-life in ms the values were written with
//	n        N   click and impression events applied
//	v        N   version, +1 per write; rewrites are conditional on it
//
// Decayed to time t, feature f's clicks are c[f]·2^((lm−t)/H).
//
// New users are created whole by a conditional create (attribute_not_exists)
// because a nested ADD fails on a missing map. Rebasing to a later landmark
// (once per 8 half-lives per active user), pruning at the feature cap, and
// deltas too large for one 4 KB update expression go through a conditional
// read-modify-write on v.
//
// # Limits
//
// At most Config.MaxFeatures (500) features per user, names of at most
// Config.MaxFeatureNameBytes (256) bytes: under 300 KB per item, within
// DynamoDB's 400 KB. At the cap the weakest features are pruned down to 90%;
// pruning never double-counts, but a pruned feature's history is lost.
// Precision: relative error ≤ 1e-9 for every value ≥ 5e-12 per write at the
// user's landmark (anything with recent weight); fainter values keep an
// absolute error ≤ 1e-20 and fade out. Values saturate at 1e18.
package vectors
