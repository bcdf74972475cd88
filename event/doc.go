// Package event is the v1 event contract (docs/DESIGN.md §3) that every part of the
// pipeline shares: producers and the collector validate and encode events with
// it before they reach Kinesis, and the archive, vectors and metrics consumers
// decode every record with it, turning bad records into an *Error with a reason
// for the dead-letter location instead of stopping the shard.
package event
