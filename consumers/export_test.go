package consumers

// Abandon stops r like a crash: shard goroutines end without flushing,
// checkpointing or releasing their leases, and Run returns.
func Abandon(r *Runner) {
	r.mu.Lock()
	abandon := r.abandon
	r.mu.Unlock()
	if abandon != nil {
		abandon()
	}
}

// FirstCallRecords is the Limit of a session's first GetRecords call.
const FirstCallRecords = firstCallRecords

// RecordsCap is recordsCap, the Records slice size of a batch.
var RecordsCap = recordsCap
