package vectors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	cretry "github.com/clickstream-go/clickstream/internal/retry"
)

// DynamoDBAPI is the part of the DynamoDB client this package uses.
type DynamoDBAPI interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

var _ DynamoDBAPI = (*dynamodb.Client)(nil)

// Item attribute names (see the package doc for the layout).
const (
	attrUser     = "user_id"
	attrClicks   = "c"
	attrImps     = "i"
	attrGuards   = "g"
	attrLandmark = "lm"
	attrHalfLife = "hl"
	attrEvents   = "n"
	attrVersion  = "v"
)

// DynamoDB's expression limits: 4 KB per expression string, and at most
// 300 operators or functions per update expression. maxAddFeatures keeps
// the ADD path (2 actions per feature, plus 2) under both; larger deltas go
// through a rewrite.
const (
	maxExpressionBytes = 4096
	maxAddFeatures     = 140
)

// dynamoStore is the store on a DynamoDB table.
type dynamoStore struct {
	db    DynamoDBAPI
	table string
}

var _ store = (*dynamoStore)(nil)

func (s *dynamoStore) key(user string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrUser: &types.AttributeValueMemberS{Value: user}}
}

func (s *dynamoStore) get(ctx context.Context, user string) (*item, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: s.key(user), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("get vector %q: %w", user, err)
	}
	return decodeItem(out.Item)
}

func (s *dynamoStore) add(ctx context.Context, r addReq) (*item, error) {
	in, err := buildAdd(s.table, r)
	if err != nil {
		return nil, err
	}
	_, err = s.db.UpdateItem(ctx, in)
	return s.result(r.user, err, true)
}

func (s *dynamoStore) put(ctx context.Context, r putReq) (*item, error) {
	_, err := s.db.UpdateItem(ctx, buildPut(s.table, r))
	return s.result(r.next.UserID, err, false)
}

// result maps an UpdateItem error: a failed condition carries the item
// (ReturnValuesOnConditionCheckFailure ALL_OLD, so no extra read), and a
// number-limit ValidationException on the ADD path asks for a rewrite.
func (s *dynamoStore) result(user string, err error, isAdd bool) (*item, error) {
	if err == nil {
		return nil, nil
	}
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		it, derr := decodeItem(ccf.Item)
		if derr != nil {
			return nil, derr
		}
		return it, errConflict
	}
	var api smithy.APIError
	if isAdd && errors.As(err, &api) && api.ErrorCode() == "ValidationException" && isNumberLimit(api.ErrorMessage()) {
		return nil, fmt.Errorf("%w: %s", errNeedRewrite, api.ErrorMessage())
	}
	return nil, fmt.Errorf("update vector %q: %w", user, err)
}

// isNumberLimit recognises DynamoDB's number errors ("DynamoDB only supports
// precision up to 38 digits", "Number overflow. Attempting to store a number
// with magnitude larger than supported range", "Number underflow ...").
func isNumberLimit(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "precision") || strings.Contains(m, "overflow") || strings.Contains(m, "underflow") ||
		strings.Contains(m, "significant digits")
}

// retryableDynamo reports whether err is worth retrying: throttling and
// transient errors as the SDK classifies them (its DefaultRetryables).
func retryableDynamo(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
}

// isThrottle reports whether err is DynamoDB throttling.
func isThrottle(err error) bool { return cretry.IsThrottle(err) }

// buildAdd renders the fast path: one UpdateItem of ADDs on the nested
// feature values, moving the shard's guard to the delta's last event. The
// condition makes it exactly-once and safe:
//   - the maps exist (nested ADD fails on a missing map: new users are
//     created whole by buildPut instead),
//   - landmark and half-life match (the delta was computed for them),
//   - the item has room for the delta's new features (the cap),
//   - the shard's guard is before the delta's first event (else it was
//     applied, at least in part: the caller retries with the newer events).
func buildAdd(table string, r addReq) (*dynamodb.UpdateItemInput, error) {
	names := map[string]string{
		"#c": attrClicks, "#i": attrImps, "#g": attrGuards, "#s": r.shard,
		"#lm": attrLandmark, "#hl": attrHalfLife, "#n": attrEvents, "#v": attrVersion,
	}
	values := map[string]types.AttributeValue{
		":last":  &types.AttributeValueMemberS{Value: encodeGuard(r.d.last)},
		":first": &types.AttributeValueMemberS{Value: encodeGuard(r.d.first)},
		":n":     num(strconv.FormatInt(r.d.events, 10)),
		":one":   num("1"),
		":lm":    num(strconv.FormatInt(r.d.landmark, 10)),
		":hl":    num(strconv.FormatInt(r.halfLife, 10)),
		":room":  num(strconv.Itoa(r.room)),
	}
	if len(r.d.feats) > maxAddFeatures {
		return nil, fmt.Errorf("%w: %d features in one delta (at most %d per UpdateItem)", errNeedRewrite, len(r.d.feats), maxAddFeatures)
	}
	var b strings.Builder
	b.WriteString("SET #g.#s = :last ADD #n :n, #v :one")
	for k, f := range r.d.feats {
		c, cz, cs := fixed(f.clicks)
		i, iz, is := fixed(f.imp)
		if cs || is {
			return nil, fmt.Errorf("%w: feature %q saturates", errNeedRewrite, f.name)
		}
		if cz && iz {
			continue // faded to nothing at the stored resolution
		}
		id := strconv.FormatInt(int64(k), 36)
		names["#f"+id] = f.name
		values[":c"+id] = num(c)
		values[":i"+id] = num(i)
		// Both maps get the key (ADD 0 when one side is zero): keys(c) ==
		// keys(i), so size(c) is the feature count the cap checks.
		b.WriteString(", #c.#f")
		b.WriteString(id)
		b.WriteString(" :c")
		b.WriteString(id)
		b.WriteString(", #i.#f")
		b.WriteString(id)
		b.WriteString(" :i")
		b.WriteString(id)
		if b.Len() > maxExpressionBytes {
			return nil, fmt.Errorf("%w: update expression exceeds %d bytes", errNeedRewrite, maxExpressionBytes)
		}
	}
	return &dynamodb.UpdateItemInput{
		TableName:        aws.String(table),
		Key:              map[string]types.AttributeValue{attrUser: &types.AttributeValueMemberS{Value: r.user}},
		UpdateExpression: aws.String(b.String()),
		ConditionExpression: aws.String("attribute_exists(#c) AND attribute_exists(#i) AND attribute_exists(#g)" +
			" AND #lm = :lm AND #hl = :hl AND size(#c) <= :room" +
			" AND (attribute_not_exists(#g.#s) OR #g.#s < :first)"),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}, nil
}

// buildPut renders a create (only if the user is missing) or a rewrite (only
// if nobody wrote since the item was read: version unchanged). Attributes
// this package does not know are left alone.
func buildPut(table string, r putReq) *dynamodb.UpdateItemInput {
	it := r.next
	av := encodeItem(it)
	names := map[string]string{
		"#c": attrClicks, "#i": attrImps, "#g": attrGuards,
		"#lm": attrLandmark, "#hl": attrHalfLife, "#n": attrEvents, "#v": attrVersion,
	}
	values := map[string]types.AttributeValue{
		":c": av[attrClicks], ":i": av[attrImps], ":g": av[attrGuards],
		":lm": av[attrLandmark], ":hl": av[attrHalfLife], ":n": av[attrEvents], ":v": av[attrVersion],
	}
	var cond string
	// DynamoDB rejects placeholders an expression does not use.
	switch {
	case r.create:
		cond = "attribute_not_exists(#u)"
		names["#u"] = attrUser
	case r.prevVersion == 0:
		cond = "attribute_exists(#u) AND attribute_not_exists(#v)"
		names["#u"] = attrUser
	default:
		cond = "#v = :pv"
		values[":pv"] = num(strconv.FormatInt(r.prevVersion, 10))
	}
	return &dynamodb.UpdateItemInput{
		TableName:                           aws.String(table),
		Key:                                 map[string]types.AttributeValue{attrUser: &types.AttributeValueMemberS{Value: it.UserID}},
		UpdateExpression:                    aws.String("SET #c = :c, #i = :i, #g = :g, #lm = :lm, #hl = :hl, #n = :n, #v = :v"),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
}

func num(s string) types.AttributeValue { return &types.AttributeValueMemberN{Value: s} }

// encodeItem renders an item's attributes (values quantised by fixed).
func encodeItem(it *item) map[string]types.AttributeValue {
	c := make(map[string]types.AttributeValue, len(it.Clicks))
	for k, v := range it.Clicks {
		s, _, _ := fixed(v)
		c[k] = num(s)
	}
	i := make(map[string]types.AttributeValue, len(it.Imps))
	for k, v := range it.Imps {
		s, _, _ := fixed(v)
		i[k] = num(s)
	}
	g := make(map[string]types.AttributeValue, len(it.Guards))
	for k, v := range it.Guards {
		g[k] = &types.AttributeValueMemberS{Value: v}
	}
	return map[string]types.AttributeValue{
		attrUser:     &types.AttributeValueMemberS{Value: it.UserID},
		attrClicks:   &types.AttributeValueMemberM{Value: c},
		attrImps:     &types.AttributeValueMemberM{Value: i},
		attrGuards:   &types.AttributeValueMemberM{Value: g},
		attrLandmark: num(strconv.FormatInt(it.Landmark, 10)),
		attrHalfLife: num(strconv.FormatInt(it.HalfLife, 10)),
		attrEvents:   num(strconv.FormatInt(it.Events, 10)),
		attrVersion:  num(strconv.FormatInt(it.Version, 10)),
	}
}

// decodeItem parses an item; nil for an empty map (no item). An item this
// package cannot interpret is ErrCorruptItem: failing loudly beats
// overwriting someone's data.
func decodeItem(m map[string]types.AttributeValue) (*item, error) {
	if len(m) == 0 {
		return nil, nil
	}
	it := &item{Clicks: map[string]float64{}, Imps: map[string]float64{}, Guards: map[string]string{}}
	u, ok := m[attrUser].(*types.AttributeValueMemberS)
	if !ok {
		return nil, fmt.Errorf("%w: no %s", ErrCorruptItem, attrUser)
	}
	it.UserID = u.Value
	bad := func(what string, err error) error {
		return fmt.Errorf("%w: user %q: %s: %v", ErrCorruptItem, it.UserID, what, err)
	}
	var err error
	if it.Landmark, err = intAttr(m, attrLandmark); err != nil {
		return nil, bad(attrLandmark, err)
	}
	if it.HalfLife, err = intAttr(m, attrHalfLife); err != nil {
		return nil, bad(attrHalfLife, err)
	}
	if it.HalfLife <= 0 {
		return nil, bad(attrHalfLife, errors.New("not positive"))
	}
	if _, ok := m[attrEvents]; ok {
		if it.Events, err = intAttr(m, attrEvents); err != nil {
			return nil, bad(attrEvents, err)
		}
	}
	if _, ok := m[attrVersion]; ok {
		if it.Version, err = intAttr(m, attrVersion); err != nil {
			return nil, bad(attrVersion, err)
		}
	}
	maps := 0
	for _, spec := range []struct {
		name string
		dst  map[string]float64
	}{{attrClicks, it.Clicks}, {attrImps, it.Imps}} {
		av, ok := m[spec.name]
		if !ok {
			continue
		}
		mm, ok := av.(*types.AttributeValueMemberM)
		if !ok {
			return nil, bad(spec.name, errors.New("not a map"))
		}
		maps++
		for k, v := range mm.Value {
			n, ok := v.(*types.AttributeValueMemberN)
			if !ok {
				return nil, bad(spec.name+"."+k, errors.New("not a number"))
			}
			f, err := strconv.ParseFloat(n.Value, 64)
			if err != nil {
				return nil, bad(spec.name+"."+k, err)
			}
			spec.dst[k] = f
		}
	}
	if av, ok := m[attrGuards]; ok {
		mm, ok := av.(*types.AttributeValueMemberM)
		if !ok {
			return nil, bad(attrGuards, errors.New("not a map"))
		}
		maps++
		for k, v := range mm.Value {
			s, ok := v.(*types.AttributeValueMemberS)
			if !ok {
				return nil, bad(attrGuards+"."+k, errors.New("not a string"))
			}
			it.Guards[k] = s.Value
		}
	}
	it.HasMaps = maps == 3
	return it, nil
}

func intAttr(m map[string]types.AttributeValue, name string) (int64, error) {
	n, ok := m[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, errors.New("missing or not a number")
	}
	return strconv.ParseInt(n.Value, 10, 64)
}
