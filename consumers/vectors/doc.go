// Package vectors is the user-vector consumer: it turns clicks and
// impressions into one DynamoDB item per user holding, per feature, the
// exponentially decayed sums of click and impression weights (half-life H in
// event time), updated within a second of the click with one conditional
// UpdateItem of ADDs per user per batch (forward decay, see decay.go), and
// serves them through GET /v1/users/{user_id}/vector, the Go client in
// package client and `clickstream vectors get`. A per-shard guard in each
// item, compared event by event, makes replays harmless. The item layout,
// limits and the exactly-once argument are in docs/DESIGN.md §4.2.
package vectors
