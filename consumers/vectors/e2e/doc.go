// Package e2e holds the end-to-end tests of the user-vector consumer:
// events produced with KPL aggregation onto kinesis-local, read by the
// consumer runtime, written to DynamoDB Local by package vectors and read
// back through its HTTP API — including the SIGKILL crash test and the
// put-to-visible latency measurement. It has no non-test code.
package e2e
