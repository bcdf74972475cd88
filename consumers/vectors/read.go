package vectors

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/clickstream-go/clickstream/consumers/vectors/client"
	"github.com/clickstream-go/clickstream/internal/retry"
	"github.com/clickstream-go/clickstream/internal/setup"
)

// Vector is a user's vector decayed to AsOf: the read API's JSON shape
// (docs/DESIGN.md §4.2), shared with the Go client.
type Vector = client.Vector

// Feature is one feature of a Vector.
type Feature = client.Feature

// ReaderConfig configures a Reader. Zero fields mean their defaults.
type ReaderConfig struct {
	// Table is the DynamoDB table. Default "clickstream-user-vectors".
	Table string
	// ConsistentRead makes reads strongly consistent (twice the read
	// capacity; sees a write the moment it returned). Default false:
	// eventually consistent, typically current within a second on AWS.
	ConsistentRead bool
	// Now is the clock for "as of now". Default time.Now.
	Now func() time.Time
}

// Reader reads user vectors from DynamoDB. It is safe for concurrent use.
type Reader struct {
	db  DynamoDBAPI
	cfg ReaderConfig
}

// NewReader returns a Reader on db.
func NewReader(db DynamoDBAPI, cfg ReaderConfig) *Reader {
	if cfg.Table == "" {
		cfg.Table = setup.DefaultVectorsTable
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reader{db: db, cfg: cfg}
}

// Get returns user's top k features (k <= 0: all) decayed to at (zero: now),
// sorted by clicks descending, then impressions descending, then name.
// ErrNotFound when no vector is stored; ErrAtOutOfRange when at is so far
// before the user's events that the values overflow.
func (r *Reader) Get(ctx context.Context, user string, at time.Time, k int) (*Vector, error) {
	if at.IsZero() {
		at = r.cfg.Now()
	}
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                aws.String(r.cfg.Table),
		Key:                      userKey(user),
		ProjectionExpression:     aws.String(readProjection),
		ExpressionAttributeNames: readNames,
		ConsistentRead:           aws.Bool(r.cfg.ConsistentRead),
	})
	if err != nil {
		return nil, fmt.Errorf("get vector %q: %w", user, err)
	}
	it, err := decodeItem(out.Item)
	if err != nil {
		return nil, err
	}
	if it == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, user)
	}
	return vectorOf(it, at, k)
}

// The attributes a read needs: the guards and version are the writer's business.
const readProjection = "#u, #c, #i, #lm, #hl, #n"

var readNames = map[string]string{"#u": attrUser, "#c": attrClicks, "#i": attrImps, "#lm": attrLandmark, "#hl": attrHalfLife, "#n": attrEvents}

func userKey(user string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrUser: &types.AttributeValueMemberS{Value: user}}
}

// maxBatchGet is BatchGetItem's limit of keys per call.
const maxBatchGet = 100

// GetMany is Get for many users at once, with BatchGetItem (100 keys a call;
// keys DynamoDB leaves unprocessed are asked again with backoff). Users
// without a stored vector are absent from the map; duplicates are read
// once. Each vector is exactly what Get (and the read API) returns.
func (r *Reader) GetMany(ctx context.Context, users []string, at time.Time, k int) (map[string]*Vector, error) {
	if at.IsZero() {
		at = r.cfg.Now()
	}
	out := make(map[string]*Vector, len(users))
	seen := make(map[string]bool, len(users))
	var pending []map[string]types.AttributeValue
	for _, u := range users {
		if !seen[u] {
			seen[u] = true
			pending = append(pending, userKey(u))
		}
	}
	bo := retry.Backoff{Min: 50 * time.Millisecond, Max: 2 * time.Second}
	for len(pending) > 0 {
		n := min(len(pending), maxBatchGet)
		res, err := r.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
			r.cfg.Table: {Keys: pending[:n], ProjectionExpression: aws.String(readProjection),
				ExpressionAttributeNames: readNames, ConsistentRead: aws.Bool(r.cfg.ConsistentRead)},
		}})
		if err != nil {
			return nil, fmt.Errorf("get vectors of %d users: %w", n, err)
		}
		pending = pending[n:]
		for _, m := range res.Responses[r.cfg.Table] {
			it, err := decodeItem(m)
			if err != nil {
				return nil, err
			}
			if it == nil {
				continue
			}
			v, err := vectorOf(it, at, k)
			if err != nil {
				return nil, fmt.Errorf("user %q: %w", it.UserID, err)
			}
			out[v.UserID] = v
		}
		if left := res.UnprocessedKeys[r.cfg.Table].Keys; len(left) > 0 {
			pending = append(pending, left...)
			if err := retry.Sleep(ctx, bo.Next()); err != nil {
				return nil, err
			}
		} else {
			bo.Reset()
		}
	}
	return out, nil
}

// Get is Reader.Get with a Reader of default configuration on table.
func Get(ctx context.Context, db DynamoDBAPI, table, user string, at time.Time, k int) (*Vector, error) {
	return NewReader(db, ReaderConfig{Table: table}).Get(ctx, user, at, k)
}

// SampleUsers returns up to n user ids from the table (a Scan page, in
// DynamoDB's hash order: arbitrary but stable), for demos and smoke tests.
func (r *Reader) SampleUsers(ctx context.Context, n int) ([]string, error) {
	out, err := r.db.Scan(ctx, &dynamodb.ScanInput{
		TableName:                aws.String(r.cfg.Table),
		Limit:                    aws.Int32(int32(max(1, n))),
		ProjectionExpression:     aws.String("#u"),
		ExpressionAttributeNames: map[string]string{"#u": attrUser},
	})
	if err != nil {
		return nil, fmt.Errorf("scan vectors: %w", err)
	}
	users := make([]string, 0, len(out.Items))
	for _, m := range out.Items {
		if s, ok := m[attrUser].(*types.AttributeValueMemberS); ok {
			users = append(users, s.Value)
		}
	}
	return users, nil
}

// vectorOf decays an item's values to at: value·2^((landmark−at)/H).
func vectorOf(it *item, at time.Time, k int) (*Vector, error) {
	at = at.UTC().Truncate(time.Millisecond)
	f := growth(it.Landmark, at.UnixMilli(), it.HalfLife)
	if math.IsInf(f, 0) {
		return nil, fmt.Errorf("%w: %s", ErrAtOutOfRange, at.Format(time.RFC3339))
	}
	v := &Vector{
		UserID: it.UserID, AsOf: at, Events: it.Events,
		HalfLifeHours: float64(it.HalfLife) / float64(time.Hour/time.Millisecond),
		Features:      make([]Feature, 0, len(it.Clicks)),
	}
	for name, c := range it.Clicks {
		v.Features = append(v.Features, Feature{Name: name, Clicks: c * f, Impressions: it.Imps[name] * f})
	}
	for name, i := range it.Imps { // keys(i) == keys(c) for items this package wrote
		if _, ok := it.Clicks[name]; !ok {
			v.Features = append(v.Features, Feature{Name: name, Impressions: i * f})
		}
	}
	for _, x := range v.Features {
		if math.IsInf(x.Clicks, 0) || math.IsInf(x.Impressions, 0) {
			return nil, fmt.Errorf("%w: %s", ErrAtOutOfRange, at.Format(time.RFC3339))
		}
	}
	slices.SortFunc(v.Features, func(a, b Feature) int {
		if c := cmp.Compare(b.Clicks, a.Clicks); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Impressions, a.Impressions); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	if k > 0 && len(v.Features) > k {
		v.Features = v.Features[:k]
	}
	return v, nil
}
