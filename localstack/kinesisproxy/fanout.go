package kinesisproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/clickstream-go/clickstream/internal/retry"
)

// Enhanced fan-out. The proxy serves SubscribeToShard itself, from the
// emulator's GetRecords, because neither emulator does it as AWS does:
// kinesis-local's event stream lacks the initial-response event every AWS
// SDK v2 waits for, pushes once a second and sends no ChildShards;
// kinesalite has no fan-out at all. Consumer registration goes to the
// emulator when it has it (kinesis-local keeps registrations across proxy
// restarts) and is served by the proxy when it does not (kinesalite).
//
// What AWS does and the proxy does too:
//   - a subscription is an event stream: initial-response, then
//     SubscribeToShardEvent messages (Records, ContinuationSequenceNumber,
//     MillisBehindLatest) as records arrive, an empty one at least every
//     Config.FanOutHeartbeat once a position is known;
//   - it ends after Config.SubscriptionLifetime (AWS: 5 minutes), and at the
//     shard's end after an event with ChildShards and no continuation;
//   - one subscription per consumer and shard: a second SubscribeToShard
//     within 5 s of the last successful one fails with
//     ResourceInUseException; a later one takes over, and the old stream
//     ends with a ResourceInUseException event;
//   - with limits: one SubscribeToShard call per second per consumer and
//     shard (LimitExceededException), and at most 2 MiB/s pushed per
//     consumer and shard (pushes wait, as on AWS).
//
// One deviation: AWS sends a ContinuationSequenceNumber in every event; the
// proxy sends events only once it can name one (the first record read, or
// the AFTER_SEQUENCE_NUMBER the subscription started from), so an empty
// shard read from TRIM_HORIZON sees no events until its first record.

const (
	eventStreamType = "application/vnd.amazon.eventstream"
	// takeoverAfter: a subscription younger than this cannot be taken over.
	takeoverAfter = 5 * time.Second
	// fanOutReadLimit is the Limit of the proxy's GetRecords calls for a
	// subscription (kinesis-local pushes up to 10,000 records an event too).
	fanOutReadLimit = 10000
)

var errTakenOver = errors.New("taken over by a newer subscription")
var errDeregistered = errors.New("consumer deregistered")

// subscription is one live SubscribeToShard stream.
type subscription struct {
	started time.Time
	cancel  context.CancelCauseFunc
}

// fanOutKey names a consumer-shard.
func fanOutKey(consumerARN, shard string) string { return consumerARN + "|" + shard }

// registered is a stream consumer of the proxy's own registry.
type registered struct {
	Name, ARN, StreamARN string
	Created              time.Time
	activeAt             time.Time
}

func (c *registered) status(now time.Time) string {
	if now.Before(c.activeAt) {
		return "CREATING"
	}
	return "ACTIVE"
}

func (c *registered) description(now time.Time) map[string]any {
	return map[string]any{
		"ConsumerName": c.Name, "ConsumerARN": c.ARN, "ConsumerStatus": c.status(now), "StreamARN": c.StreamARN,
		"ConsumerCreationTimestamp": float64(c.Created.UnixMilli()) / 1000,
	}
}

// consumerCall serves RegisterStreamConsumer, DescribeStreamConsumer,
// ListStreamConsumers and DeregisterStreamConsumer: by the emulator when it
// knows them, else from the proxy's registry.
func (p *Proxy) consumerCall(r *http.Request, op string, body []byte) *response {
	p.mu.Lock()
	own := p.ownConsumers
	p.mu.Unlock()
	if !own {
		res := p.forward(r, body)
		if !(res.status == http.StatusBadRequest && bytes.Contains(res.body, []byte("UnknownOperation"))) {
			if op == "DeregisterStreamConsumer" && res.status == http.StatusOK {
				p.endSubscriptions(body)
			}
			return res
		}
		p.mu.Lock()
		p.ownConsumers = true
		p.mu.Unlock()
		p.log.Info("the emulator has no stream consumers: the proxy registers them")
	}
	var in struct {
		StreamARN, ConsumerName, ConsumerARN string
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return awsError(http.StatusBadRequest, "SerializationException", err.Error())
	}
	now := p.now()
	switch op {
	case "RegisterStreamConsumer":
		name := streamName("", in.StreamARN)
		if name == "" || in.ConsumerName == "" {
			return awsError(http.StatusBadRequest, "InvalidArgumentException", "StreamARN and ConsumerName are required")
		}
		var sum struct{ StreamDescriptionSummary struct{ StreamARN string } }
		if err := p.call(r.Context(), r.Header, "DescribeStreamSummary", map[string]any{"StreamName": name}, &sum); err != nil {
			return awsError(http.StatusBadRequest, "ResourceNotFoundException", fmt.Sprintf("Stream %s under account %s not found.", name, p.cfg.Account))
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.consumers {
			if c.StreamARN == in.StreamARN && c.Name == in.ConsumerName {
				return awsError(http.StatusBadRequest, "ResourceInUseException", fmt.Sprintf("Consumer %s exists", in.ConsumerName))
			}
		}
		c := &registered{Name: in.ConsumerName, StreamARN: in.StreamARN, Created: now, activeAt: now.Add(p.cfg.ConsumerActivation),
			ARN: fmt.Sprintf("%s/consumer/%s:%d", in.StreamARN, in.ConsumerName, now.Unix())}
		p.consumers[c.ARN] = c
		d := c.description(now)
		delete(d, "StreamARN")
		return jsonResponse(http.StatusOK, nil, map[string]any{"Consumer": d})
	case "DescribeStreamConsumer", "DeregisterStreamConsumer":
		p.mu.Lock()
		c := p.findConsumerLocked(in.ConsumerARN, in.StreamARN, in.ConsumerName)
		if c == nil {
			p.mu.Unlock()
			return awsError(http.StatusBadRequest, "ResourceNotFoundException", "Consumer not found")
		}
		if op == "DescribeStreamConsumer" {
			d := c.description(now)
			p.mu.Unlock()
			return jsonResponse(http.StatusOK, nil, map[string]any{"ConsumerDescription": d})
		}
		delete(p.consumers, c.ARN)
		p.mu.Unlock()
		p.endSubscriptions(body)
		return jsonResponse(http.StatusOK, nil, map[string]any{})
	case "ListStreamConsumers":
		p.mu.Lock()
		list := []map[string]any{}
		for _, c := range p.consumers {
			if c.StreamARN == in.StreamARN {
				d := c.description(now)
				delete(d, "StreamARN")
				list = append(list, d)
			}
		}
		p.mu.Unlock()
		return jsonResponse(http.StatusOK, nil, map[string]any{"Consumers": list})
	}
	return awsError(http.StatusBadRequest, "UnknownOperationException", op)
}

func (p *Proxy) findConsumerLocked(arn, streamARN, name string) *registered {
	if arn != "" {
		return p.consumers[arn]
	}
	for _, c := range p.consumers {
		if c.StreamARN == streamARN && c.Name == name {
			return c
		}
	}
	return nil
}

// endSubscriptions ends the live subscriptions of a deregistered consumer
// (body is the DeregisterStreamConsumer request).
func (p *Proxy) endSubscriptions(body []byte) {
	var in struct{ StreamARN, ConsumerName, ConsumerARN string }
	_ = json.Unmarshal(body, &in)
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, s := range p.subs {
		arn, _, _ := strings.Cut(k, "|")
		if arn == in.ConsumerARN || in.ConsumerName != "" && strings.HasPrefix(arn, in.StreamARN+"/consumer/"+in.ConsumerName+":") {
			s.cancel(errDeregistered)
		}
	}
}

// consumerStatus returns a consumer's stream ARN and status, or an error
// answer.
func (p *Proxy) consumerStatus(r *http.Request, arn string) (streamARN, status string, res *response) {
	body, _ := json.Marshal(map[string]string{"ConsumerARN": arn})
	h := r.Header.Clone()
	h.Set("X-Amz-Target", targetPrefix+"DescribeStreamConsumer")
	req := r.Clone(r.Context())
	req.Header = h
	ans := p.consumerCall(req, "DescribeStreamConsumer", body)
	if ans.status != http.StatusOK {
		return "", "", ans
	}
	var out struct {
		ConsumerDescription struct{ StreamARN, ConsumerStatus string }
	}
	if err := json.Unmarshal(ans.body, &out); err != nil {
		return "", "", awsError(http.StatusInternalServerError, "InternalFailure", "kinesisproxy: "+err.Error())
	}
	d := out.ConsumerDescription
	if d.StreamARN == "" { // from the ARN: STREAM_ARN/consumer/NAME:TS
		d.StreamARN, _, _ = strings.Cut(arn, "/consumer/")
	}
	return d.StreamARN, d.ConsumerStatus, nil
}

type startingPosition struct {
	Type           string
	SequenceNumber string
	Timestamp      json.Number
}

// fanOutRecord is a record as GetRecords returns it and the event carries it.
type fanOutRecord struct {
	SequenceNumber              string
	ApproximateArrivalTimestamp json.RawMessage
	Data                        string
	PartitionKey                string
	EncryptionType              string `json:",omitempty"`
}

// subscribeToShard serves one SubscribeToShard call until the subscription
// ends.
func (p *Proxy) subscribeToShard(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		ConsumerARN, ShardId string
		StartingPosition     startingPosition
	}
	if err := json.Unmarshal(body, &in); err != nil || in.ConsumerARN == "" || in.ShardId == "" {
		awsError(http.StatusBadRequest, "InvalidArgumentException", "ConsumerARN, ShardId and StartingPosition are required").write(w)
		return
	}
	streamARN, status, res := p.consumerStatus(r, in.ConsumerARN)
	if res != nil {
		res.write(w)
		return
	}
	if status != "ACTIVE" {
		awsError(http.StatusBadRequest, "ResourceInUseException", fmt.Sprintf("Consumer %s is %s, not ACTIVE.", in.ConsumerARN, status)).write(w)
		return
	}
	name := streamName("", streamARN)
	key := fanOutKey(in.ConsumerARN, in.ShardId)

	// One subscription per consumer-shard; the call rate.
	now := p.now()
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	sub := &subscription{started: now, cancel: cancel}
	p.mu.Lock()
	p.stats.SubscribeCalls++
	if rate := p.limits.SubscribeCallsPerSec; rate > 0 {
		if last, ok := p.subCalls[key]; ok && now.Sub(last) < time.Duration(float64(time.Second)/rate) {
			p.stats.SubscribeRejected++
			p.mu.Unlock()
			awsError(http.StatusBadRequest, "LimitExceededException",
				fmt.Sprintf("Rate exceeded for consumer %s and shard %s", in.ConsumerARN, in.ShardId)).write(w)
			return
		}
	}
	p.subCalls[key] = now
	if old := p.subs[key]; old != nil {
		if now.Sub(old.started) < takeoverAfter {
			p.stats.SubscribeRejected++
			p.mu.Unlock()
			awsError(http.StatusBadRequest, "ResourceInUseException",
				fmt.Sprintf("Another active subscription exists for consumer %s on shard %s", in.ConsumerARN, in.ShardId)).write(w)
			return
		}
		old.cancel(errTakenOver)
	}
	p.subs[key] = sub
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		if p.subs[key] == sub {
			delete(p.subs, key)
		}
		p.mu.Unlock()
	}()

	// The starting position, as an iterator of the emulator's.
	itIn := map[string]any{"StreamName": name, "ShardId": in.ShardId, "ShardIteratorType": in.StartingPosition.Type}
	var cont *string // the continuation to send; nil until one is known
	switch in.StartingPosition.Type {
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		itIn["StartingSequenceNumber"] = in.StartingPosition.SequenceNumber
		if in.StartingPosition.Type == "AFTER_SEQUENCE_NUMBER" {
			cont = &in.StartingPosition.SequenceNumber
		}
	case "AT_TIMESTAMP":
		itIn["Timestamp"] = in.StartingPosition.Timestamp
	}
	itBody, _ := json.Marshal(itIn)
	h := r.Header.Clone()
	h.Set("X-Amz-Target", targetPrefix+"GetShardIterator")
	res, err := p.send(ctx, "/", h, itBody)
	if err != nil {
		awsError(http.StatusInternalServerError, "InternalFailure", "kinesisproxy: "+err.Error()).write(w)
		return
	}
	if res.status != http.StatusOK {
		res.write(w)
		return
	}
	var it struct{ ShardIterator string }
	if err := json.Unmarshal(res.body, &it); err != nil {
		awsError(http.StatusInternalServerError, "InternalFailure", "kinesisproxy: "+err.Error()).write(w)
		return
	}

	w.Header().Set("Content-Type", eventStreamType)
	w.Header().Set("X-Amzn-Requestid", requestID())
	w.WriteHeader(http.StatusOK)
	es := &eventWriter{w: w, enc: eventstream.NewEncoder()}
	if es.event("initial-response", []byte("{}")) != nil {
		return
	}
	p.count(func(s *Stats) { s.Subscriptions++ })
	p.push(ctx, r.Header, es, name, in.ShardId, key, it.ShardIterator, cont)
}

// push reads the shard from iterator and sends what it reads until the
// subscription ends.
func (p *Proxy) push(ctx context.Context, client http.Header, es *eventWriter, stream, shard, key, iter string, cont *string) {
	deadline := p.now().Add(p.cfg.SubscriptionLifetime)
	lastSent := p.now()
	p.mu.Lock()
	bytesOut := newBucket(p.limits.FanOutBytesPerSec, p.limits.Burst.D(), p.now())
	p.mu.Unlock()
	for {
		if ctx.Err() != nil {
			switch cause := context.Cause(ctx); {
			case errors.Is(cause, errTakenOver):
				_ = es.exception("ResourceInUseException", "Another subscription to this shard by this consumer took over.")
			case errors.Is(cause, errDeregistered):
				_ = es.exception("ResourceNotFoundException", "The consumer was deregistered.")
			}
			return
		}
		if !p.now().Before(deadline) {
			return // AWS ends every subscription after 5 minutes
		}
		// Pushes wait while the consumer-shard's bytes are in debt.
		if wait := bytesOut.wait(p.now()); wait > 0 {
			if retry.Sleep(ctx, wait) != nil {
				continue
			}
		}
		var out struct {
			Records            []fanOutRecord
			NextShardIterator  *string
			MillisBehindLatest int64
			ChildShards        []json.RawMessage
		}
		err := p.call(ctx, client, "GetRecords", map[string]any{"ShardIterator": iter, "Limit": fanOutReadLimit}, &out)
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			p.log.Warn("subscription ended: reading the shard failed", "stream", stream, "shard", shard, "err", err)
			_ = es.exception("InternalFailure", "kinesisproxy: "+err.Error())
			return
		}
		n := 0
		for _, rec := range out.Records {
			n += dataLen(rec.Data) + len(rec.PartitionKey)
		}
		bytesOut.charge(p.now(), float64(n))
		end := out.NextShardIterator == nil || *out.NextShardIterator == ""
		if len(out.Records) > 0 {
			cont = &out.Records[len(out.Records)-1].SequenceNumber
		}
		if len(out.Records) > 0 || end || cont != nil && p.now().Sub(lastSent) >= p.cfg.FanOutHeartbeat {
			ev := map[string]any{"Records": out.Records, "MillisBehindLatest": out.MillisBehindLatest}
			if out.Records == nil {
				ev["Records"] = []fanOutRecord{}
			}
			if end {
				ev["ChildShards"] = out.ChildShards
				if out.ChildShards == nil {
					ev["ChildShards"] = []json.RawMessage{}
				}
			} else {
				ev["ContinuationSequenceNumber"] = *cont
			}
			payload, _ := json.Marshal(ev)
			if es.event("SubscribeToShardEvent", payload) != nil {
				return // the client went away
			}
			lastSent = p.now()
			p.count(func(s *Stats) {
				s.FanOutEvents++
				s.FanOutRecords += int64(len(out.Records))
				s.FanOutBytes += int64(n)
			})
		}
		if end {
			return
		}
		iter = *out.NextShardIterator
		if len(out.Records) == 0 || out.MillisBehindLatest == 0 {
			_ = retry.Sleep(ctx, p.cfg.FanOutPoll)
		}
	}
}

// eventWriter writes event stream messages and flushes each.
type eventWriter struct {
	w   http.ResponseWriter
	enc *eventstream.Encoder
	buf bytes.Buffer
}

func (e *eventWriter) write(h eventstream.Headers, payload []byte) error {
	e.buf.Reset()
	if err := e.enc.Encode(&e.buf, eventstream.Message{Headers: h, Payload: payload}); err != nil {
		return err
	}
	if _, err := e.w.Write(e.buf.Bytes()); err != nil {
		return err
	}
	return http.NewResponseController(e.w).Flush()
}

func (e *eventWriter) event(typ string, payload []byte) error {
	var h eventstream.Headers
	h.Set(":message-type", eventstream.StringValue("event"))
	h.Set(":event-type", eventstream.StringValue(typ))
	h.Set(":content-type", eventstream.StringValue("application/json"))
	return e.write(h, payload)
}

func (e *eventWriter) exception(code, msg string) error {
	var h eventstream.Headers
	h.Set(":message-type", eventstream.StringValue("exception"))
	h.Set(":exception-type", eventstream.StringValue(code))
	h.Set(":content-type", eventstream.StringValue("application/json"))
	payload, _ := json.Marshal(map[string]string{"message": msg})
	return e.write(h, payload)
}
