package metrics

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/clickstream-go/clickstream/internal/retry"
)

// DynamoAPI is the part of the DynamoDB client DynamoStore uses.
type DynamoAPI interface {
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

var _ DynamoAPI = (*dynamodb.Client)(nil)

// DynamoStore is the Store on a DynamoDB table with the key schema of
// setup.MetricsTable (hash pk, range sk, TTL on expires_at). Item layout:
//
//	partial row  pk = METRIC#DIMS ("access#route=/api/items/:id")
//	             sk = WINDOW#SHARD ("2026-11-22T10:05Z#shardId-000000000001")
//	             metric, dims (M), window, shard, pos, open, updated,
//	             expires_at, c (M name→N counts), f (M name→N sums/min/max),
//	             q (M source→B DDSketch), d (M source→B HyperLogLog)
//	group index  pk = _dims#METRIC, sk = DIMS; dims (M), expires_at
//	shard        pk = _shard, sk = SHARD; pos, max_event_time,
//	             idle_watermark, dropped (M metric→N), mbl, updated, finished
//
// Metric names never start with '_', so the three kinds never collide.
type DynamoStore struct {
	client      DynamoAPI
	table       string
	concurrency int
}

var _ Store = (*DynamoStore)(nil)

// DynamoOption configures a DynamoStore.
type DynamoOption func(*DynamoStore)

// WithWriteConcurrency sets how many PutItem calls PutRows runs at once.
// Default 8.
func WithWriteConcurrency(n int) DynamoOption {
	return func(s *DynamoStore) {
		if n > 0 {
			s.concurrency = n
		}
	}
}

// NewDynamoStore returns a Store on table (setup.DefaultMetricsTable by
// default in the CLI).
func NewDynamoStore(client DynamoAPI, table string, opts ...DynamoOption) *DynamoStore {
	s := &DynamoStore{client: client, table: table, concurrency: 8}
	for _, o := range opts {
		o(s)
	}
	return s
}

const (
	dimsPK  = "_dims#"
	shardPK = "_shard"
)

func str(s string) types.AttributeValue       { return &types.AttributeValueMemberS{Value: s} }
func num(s string) types.AttributeValue       { return &types.AttributeValueMemberN{Value: s} }
func numI(n int64) types.AttributeValue       { return num(strconv.FormatInt(n, 10)) }
func tsAttr(t time.Time) types.AttributeValue { return str(t.UTC().Format(time.RFC3339Nano)) }

func strMap(m map[string]string) types.AttributeValue {
	out := make(map[string]types.AttributeValue, len(m))
	for k, v := range m {
		out[k] = str(v)
	}
	return &types.AttributeValueMemberM{Value: out}
}

func rowItem(r *Row) map[string]types.AttributeValue {
	it := map[string]types.AttributeValue{
		"pk":      str(r.PK()),
		"sk":      str(r.SK()),
		"metric":  str(r.Metric),
		"dims":    strMap(r.Dims),
		"window":  str(r.Window.UTC().Format(time.RFC3339)),
		"shard":   str(r.Shard),
		"open":    &types.AttributeValueMemberBOOL{Value: r.Open},
		"updated": tsAttr(r.Updated),
	}
	if r.Pos != "" {
		it["pos"] = str(r.Pos)
	}
	if !r.Expires.IsZero() {
		it["expires_at"] = numI(r.Expires.Unix())
	}
	if len(r.Counts) > 0 {
		m := make(map[string]types.AttributeValue, len(r.Counts))
		for k, v := range r.Counts {
			m[k] = numI(v)
		}
		it["c"] = &types.AttributeValueMemberM{Value: m}
	}
	if len(r.Floats) > 0 {
		m := make(map[string]types.AttributeValue, len(r.Floats))
		for k, v := range r.Floats {
			m[k] = num(strconv.FormatFloat(v, 'g', -1, 64))
		}
		it["f"] = &types.AttributeValueMemberM{Value: m}
	}
	for attr, src := range map[string]map[string][]byte{"q": r.Sketches, "d": r.Distinct} {
		if len(src) == 0 {
			continue
		}
		m := make(map[string]types.AttributeValue, len(src))
		for k, v := range src {
			m[k] = &types.AttributeValueMemberB{Value: v}
		}
		it[attr] = &types.AttributeValueMemberM{Value: m}
	}
	return it
}

// item decoding helpers: a missing or mistyped attribute reads as zero.
type item map[string]types.AttributeValue

func (it item) s(k string) string {
	if v, ok := it[k].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func (it item) n(k string) int64 {
	if v, ok := it[k].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

func (it item) b(k string) bool {
	v, ok := it[k].(*types.AttributeValueMemberBOOL)
	return ok && v.Value
}

func (it item) t(k string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, it.s(k))
	return t
}

func (it item) m(k string) map[string]types.AttributeValue {
	if v, ok := it[k].(*types.AttributeValueMemberM); ok {
		return v.Value
	}
	return nil
}

func (it item) strs(k string) map[string]string {
	out := map[string]string{}
	for kk, v := range it.m(k) {
		if s, ok := v.(*types.AttributeValueMemberS); ok {
			out[kk] = s.Value
		}
	}
	return out
}

func rowFromItem(it item) (Row, error) {
	w, err := time.Parse(time.RFC3339, it.s("window"))
	if err != nil {
		return Row{}, fmt.Errorf("decode row %s %s: window: %w", it.s("pk"), it.s("sk"), err)
	}
	r := Row{
		RowKey:   RowKey{Metric: it.s("metric"), Window: w, Shard: it.s("shard")},
		Dims:     it.strs("dims"),
		Pos:      it.s("pos"),
		Open:     it.b("open"),
		Updated:  it.t("updated"),
		Counts:   map[string]int64{},
		Floats:   map[string]float64{},
		Sketches: map[string][]byte{},
		Distinct: map[string][]byte{},
	}
	pk := it.s("pk")
	r.DimsKey = pk[min(len(r.Metric)+1, len(pk)):]
	if e := it.n("expires_at"); e > 0 {
		r.Expires = time.Unix(e, 0).UTC()
	}
	for k, v := range it.m("c") {
		if n, ok := v.(*types.AttributeValueMemberN); ok {
			c, err := strconv.ParseInt(n.Value, 10, 64)
			if err != nil {
				return Row{}, fmt.Errorf("decode row %s: count %s: %w", r.Key(), k, err)
			}
			r.Counts[k] = c
		}
	}
	for k, v := range it.m("f") {
		if n, ok := v.(*types.AttributeValueMemberN); ok {
			f, err := strconv.ParseFloat(n.Value, 64)
			if err != nil {
				return Row{}, fmt.Errorf("decode row %s: value %s: %w", r.Key(), k, err)
			}
			r.Floats[k] = f
		}
	}
	for attr, dst := range map[string]map[string][]byte{"q": r.Sketches, "d": r.Distinct} {
		for k, v := range it.m(attr) {
			if b, ok := v.(*types.AttributeValueMemberB); ok {
				dst[k] = b.Value
			}
		}
	}
	return r, nil
}

// LoadRows implements Store with consistent BatchGetItem calls of up to 100
// keys, retrying unprocessed keys.
func (s *DynamoStore) LoadRows(ctx context.Context, keys []RowKey) ([]Row, error) {
	var out []Row
	for start := 0; start < len(keys); start += 100 {
		chunk := keys[start:min(start+100, len(keys))]
		ka := &types.KeysAndAttributes{ConsistentRead: aws.Bool(true)}
		seen := map[string]bool{}
		for _, k := range chunk {
			id := k.PK() + "\x00" + k.SK()
			if seen[id] {
				continue // BatchGetItem rejects duplicate keys
			}
			seen[id] = true
			ka.Keys = append(ka.Keys, map[string]types.AttributeValue{"pk": str(k.PK()), "sk": str(k.SK())})
		}
		req := map[string]types.KeysAndAttributes{s.table: *ka}
		for attempt := 0; len(req) > 0; attempt++ {
			if attempt > 0 {
				if err := retry.Sleep(ctx, retry.Delay(attempt+1, 50*time.Millisecond, 2*time.Second)); err != nil {
					return nil, fmt.Errorf("load metrics rows: %w", err)
				}
			}
			res, err := s.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return nil, fmt.Errorf("load metrics rows: %w", err)
			}
			for _, it := range res.Responses[s.table] {
				r, err := rowFromItem(it)
				if err != nil {
					return nil, err
				}
				out = append(out, r)
			}
			req = res.UnprocessedKeys
		}
	}
	return out, nil
}

// PutRows implements Store: one conditional PutItem per row, up to the
// write concurrency at once. (BatchWriteItem takes no conditions, and the
// condition is what fences a stale owner.)
func (s *DynamoStore) PutRows(ctx context.Context, rows []Row) error {
	if len(rows) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan *Row)
	)
	for w := 0; w < min(s.concurrency, len(rows)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range next {
				if err := s.putRow(ctx, r); err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for i := range rows {
		select {
		case next <- &rows[i]:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = fmt.Errorf("put metrics rows: %w", ctx.Err())
	}
	return first
}

func (s *DynamoStore) putRow(ctx context.Context, r *Row) error {
	in := &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: rowItem(r)}
	if r.Pos != "" {
		in.ConditionExpression = aws.String("attribute_not_exists(pk) OR pos <= :pos")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":pos": str(r.Pos)}
	}
	_, err := s.client.PutItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("put row %s at %s: %w", r.Key(), r.Pos, ErrStale)
	}
	if err != nil {
		return fmt.Errorf("put row %s: %w", r.Key(), err)
	}
	return nil
}

// QueryRows implements Store (eventually consistent reads: the read API
// tolerates a row that is a second old).
func (s *DynamoStore) QueryRows(ctx context.Context, metric, dimsKey string, from, to time.Time) ([]Row, error) {
	var out []Row
	err := s.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression: aws.String("pk = :pk AND sk BETWEEN :lo AND :hi"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(rowPK(metric, dimsKey)),
			// "WINDOW#shard" sorts after "WINDOW": from is inclusive, to exclusive.
			":lo": str(windowSK(from)),
			":hi": str(windowSK(to)),
		},
	}, func(it item) error {
		r, err := rowFromItem(it)
		if err == nil {
			out = append(out, r)
		}
		return err
	})
	return out, err
}

func (s *DynamoStore) query(ctx context.Context, in *dynamodb.QueryInput, each func(item) error) error {
	in.TableName = aws.String(s.table)
	p := dynamodb.NewQueryPaginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("query metrics table: %w", err)
		}
		for _, it := range page.Items {
			if err := each(it); err != nil {
				return err
			}
		}
	}
	return nil
}

// PutDims implements Store.
func (s *DynamoStore) PutDims(ctx context.Context, metric string, dims []map[string]string, expires time.Time) error {
	for _, d := range dims {
		_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(s.table),
			Item: map[string]types.AttributeValue{
				"pk":         str(dimsPK + metric),
				"sk":         str(DimsKey(sortedKeys(d), d)),
				"dims":       strMap(d),
				"expires_at": numI(expires.Unix()),
			},
		})
		if err != nil {
			return fmt.Errorf("put group of %s: %w", metric, err)
		}
	}
	return nil
}

// ListDims implements Store.
func (s *DynamoStore) ListDims(ctx context.Context, metric string) ([]map[string]string, error) {
	var out []map[string]string
	err := s.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(dimsPK + metric)},
	}, func(it item) error {
		out = append(out, it.strs("dims"))
		return nil
	})
	return out, err
}

func shardItem(st *ShardState) map[string]types.AttributeValue {
	dropped := make(map[string]types.AttributeValue, len(st.Dropped))
	for k, v := range st.Dropped {
		dropped[k] = numI(v)
	}
	it := map[string]types.AttributeValue{
		"pk":       str(shardPK),
		"sk":       str(st.Shard),
		"dropped":  &types.AttributeValueMemberM{Value: dropped},
		"mbl":      numI(st.MillisBehindLatest),
		"updated":  tsAttr(st.Updated),
		"finished": &types.AttributeValueMemberBOOL{Value: st.Finished},
	}
	if st.Pos != "" {
		it["pos"] = str(st.Pos)
	}
	if !st.MaxEventTime.IsZero() {
		it["max_event_time"] = tsAttr(st.MaxEventTime)
	}
	if !st.IdleWatermark.IsZero() {
		it["idle_watermark"] = tsAttr(st.IdleWatermark)
	}
	if len(st.OpenRows) > 0 {
		l := make([]types.AttributeValue, len(st.OpenRows))
		for i, k := range st.OpenRows {
			l[i] = str(k.PK() + "\x00" + windowSK(k.Window))
		}
		it["open_rows"] = &types.AttributeValueMemberL{Value: l}
	}
	return it
}

func shardFromItem(it item) ShardState {
	st := ShardState{
		Shard:              it.s("sk"),
		Pos:                it.s("pos"),
		MaxEventTime:       it.t("max_event_time"),
		IdleWatermark:      it.t("idle_watermark"),
		MillisBehindLatest: it.n("mbl"),
		Updated:            it.t("updated"),
		Finished:           it.b("finished"),
		Dropped:            map[string]int64{},
	}
	for k, v := range it.m("dropped") {
		if n, ok := v.(*types.AttributeValueMemberN); ok {
			st.Dropped[k], _ = strconv.ParseInt(n.Value, 10, 64)
		}
	}
	if l, ok := it["open_rows"].(*types.AttributeValueMemberL); ok {
		for _, v := range l.Value {
			sv, ok := v.(*types.AttributeValueMemberS)
			if !ok {
				continue
			}
			pk, win, ok := strings.Cut(sv.Value, "\x00")
			metric, dims, ok2 := strings.Cut(pk, "#")
			w, err := time.Parse(windowFormat, win)
			if !ok || !ok2 || err != nil {
				continue // not ours; at worst a window publishes StaleOpenAfter late
			}
			st.OpenRows = append(st.OpenRows, RowKey{Metric: metric, DimsKey: dims, Window: w, Shard: st.Shard})
		}
	}
	return st
}

// LoadShard implements Store.
func (s *DynamoStore) LoadShard(ctx context.Context, shardID string) (ShardState, bool, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            map[string]types.AttributeValue{"pk": str(shardPK), "sk": str(shardID)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return ShardState{}, false, fmt.Errorf("load shard progress %s: %w", shardID, err)
	}
	if out.Item == nil {
		return ShardState{}, false, nil
	}
	return shardFromItem(out.Item), true, nil
}

// SaveShard implements Store.
func (s *DynamoStore) SaveShard(ctx context.Context, st ShardState) error {
	in := &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: shardItem(&st)}
	if st.Pos != "" {
		in.ConditionExpression = aws.String("attribute_not_exists(pk) OR attribute_not_exists(pos) OR pos <= :pos")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":pos": str(st.Pos)}
	} else {
		in.ConditionExpression = aws.String("attribute_not_exists(pos)")
	}
	_, err := s.client.PutItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("save shard progress %s at %s: %w", st.Shard, st.Pos, ErrStale)
	}
	if err != nil {
		return fmt.Errorf("save shard progress %s: %w", st.Shard, err)
	}
	return nil
}

// ListShards implements Store.
func (s *DynamoStore) ListShards(ctx context.Context) ([]ShardState, error) {
	var out []ShardState
	err := s.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(shardPK)},
	}, func(it item) error {
		out = append(out, shardFromItem(it))
		return nil
	})
	return out, err
}
