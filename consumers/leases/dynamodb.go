package leases

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoDBAPI is the part of the DynamoDB client DynamoStore uses.
type DynamoDBAPI interface {
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

var _ DynamoDBAPI = (*dynamodb.Client)(nil)

// DynamoStore keeps leases in a DynamoDB table with the key schema
// setup.LeasesTable (see the package doc for the item layout). All writes are
// conditional; all reads are strongly consistent.
type DynamoStore struct {
	db    DynamoDBAPI
	table string
	now   func() time.Time
}

var _ Store = (*DynamoStore)(nil)

// NewDynamoStore returns a store on table (created by `clickstream setup`,
// setup.DefaultLeasesTable by default).
func NewDynamoStore(db DynamoDBAPI, table string) *DynamoStore {
	return &DynamoStore{db: db, table: table, now: time.Now}
}

// Attribute names of the item layout.
const (
	attrApp       = "app"
	attrShard     = "shard_id"
	attrStream    = "stream"
	attrParents   = "parents"
	attrOwner     = "owner"
	attrEpoch     = "epoch"
	attrHeartbeat = "heartbeat"
	attrRenewedAt = "renewed_at"
	attrSeq       = "checkpoint_seq"
	attrSub       = "checkpoint_sub"
	attrFinished  = "finished"
	attrState     = "state"
)

func (d *DynamoStore) key(app, shardID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrApp:   &types.AttributeValueMemberS{Value: app},
		attrShard: &types.AttributeValueMemberS{Value: shardID},
	}
}

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// Create implements Store.
func (d *DynamoStore) Create(ctx context.Context, l Lease) error {
	if err := validKey(l.App, l.ShardID); err != nil {
		return err
	}
	item := d.key(l.App, l.ShardID)
	item[attrEpoch] = num(0)
	item[attrHeartbeat] = num(0)
	if l.Stream != "" {
		item[attrStream] = str(l.Stream)
	}
	if len(l.Parents) > 0 {
		item[attrParents] = &types.AttributeValueMemberSS{Value: slices.Clone(l.Parents)}
	}
	_, err := d.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(d.table),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(#app)"),
		ExpressionAttributeNames: map[string]string{
			"#app": attrApp,
		},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("create lease %s/%s: %w", l.App, l.ShardID, err)
	}
	return nil
}

// List implements Store.
func (d *DynamoStore) List(ctx context.Context, app string) ([]Lease, error) {
	p := dynamodb.NewQueryPaginator(d.db, &dynamodb.QueryInput{
		TableName:                aws.String(d.table),
		KeyConditionExpression:   aws.String("#app = :app"),
		ExpressionAttributeNames: map[string]string{"#app": attrApp},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":app": str(app),
		},
		ConsistentRead: aws.Bool(true),
	})
	var out []Lease
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list leases of %s: %w", app, err)
		}
		for _, item := range page.Items {
			l, err := fromItem(item)
			if err != nil {
				return nil, fmt.Errorf("list leases of %s: %w", app, err)
			}
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b Lease) int { return strings.Compare(a.ShardID, b.ShardID) })
	return out, nil
}

// Get implements Store.
func (d *DynamoStore) Get(ctx context.Context, app, shardID string) (Lease, error) {
	out, err := d.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(d.table),
		Key:            d.key(app, shardID),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Lease{}, fmt.Errorf("get lease %s/%s: %w", app, shardID, err)
	}
	if out.Item == nil {
		return Lease{}, fmt.Errorf("get lease %s/%s: %w", app, shardID, ErrNotFound)
	}
	l, err := fromItem(out.Item)
	if err != nil {
		return Lease{}, fmt.Errorf("get lease %s/%s: %w", app, shardID, err)
	}
	return l, nil
}

// Take implements Store.
func (d *DynamoStore) Take(ctx context.Context, l Lease, owner string) (Lease, error) {
	if owner == "" {
		return Lease{}, fmt.Errorf("take lease %s/%s: empty owner", l.App, l.ShardID)
	}
	names := map[string]string{"#o": attrOwner, "#e": attrEpoch, "#h": attrHeartbeat, "#r": attrRenewedAt}
	values := map[string]types.AttributeValue{
		":new": str(owner), ":e": num(l.Epoch), ":h": num(l.Heartbeat), ":one": num(1),
		":now": str(d.now().UTC().Format(time.RFC3339Nano)),
	}
	cond := "#e = :e AND #h = :h AND "
	if l.Owner == "" {
		cond += "attribute_not_exists(#o)"
	} else {
		cond += "#o = :o"
		values[":o"] = str(l.Owner)
	}
	out, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(d.table),
		Key:                                 d.key(l.App, l.ShardID),
		UpdateExpression:                    aws.String("SET #o = :new, #e = #e + :one, #h = #h + :one, #r = :now"),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			if ccf.Item == nil {
				return Lease{}, fmt.Errorf("take lease %s/%s: %w", l.App, l.ShardID, ErrNotFound)
			}
			return Lease{}, fmt.Errorf("take lease %s/%s: %w", l.App, l.ShardID, ErrConflict)
		}
		return Lease{}, fmt.Errorf("take lease %s/%s: %w", l.App, l.ShardID, err)
	}
	nl, err := fromItem(out.Attributes)
	if err != nil {
		return Lease{}, fmt.Errorf("take lease %s/%s: %w", l.App, l.ShardID, err)
	}
	return nl, nil
}

// fence is the condition every holder write carries.
func fence(l Lease, names map[string]string, values map[string]types.AttributeValue) string {
	names["#o"] = attrOwner
	names["#e"] = attrEpoch
	values[":o"] = str(l.Owner)
	values[":e"] = num(l.Epoch)
	return "#o = :o AND #e = :e"
}

// Renew implements Store.
func (d *DynamoStore) Renew(ctx context.Context, l Lease) (Lease, error) {
	if l.Owner == "" {
		return Lease{}, fmt.Errorf("renew lease %s/%s: %w", l.App, l.ShardID, ErrLeaseLost)
	}
	names := map[string]string{"#h": attrHeartbeat, "#r": attrRenewedAt}
	values := map[string]types.AttributeValue{":one": num(1), ":now": str(d.now().UTC().Format(time.RFC3339Nano))}
	cond := fence(l, names, values)
	out, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(d.table),
		Key:                       d.key(l.App, l.ShardID),
		UpdateExpression:          aws.String("SET #h = #h + :one, #r = :now"),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ReturnValues:              types.ReturnValueAllNew,
	})
	if isConditionFailed(err) {
		return Lease{}, fmt.Errorf("renew lease %s/%s: %w", l.App, l.ShardID, ErrLeaseLost)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("renew lease %s/%s: %w", l.App, l.ShardID, err)
	}
	nl, err := fromItem(out.Attributes)
	if err != nil {
		return Lease{}, fmt.Errorf("renew lease %s/%s: %w", l.App, l.ShardID, err)
	}
	return nl, nil
}

// Update implements Store.
func (d *DynamoStore) Update(ctx context.Context, l Lease, u Update) error {
	if l.Owner == "" {
		return fmt.Errorf("update lease %s/%s: %w", l.App, l.ShardID, ErrLeaseLost)
	}
	names := map[string]string{}
	values := map[string]types.AttributeValue{}
	cond := fence(l, names, values)
	var set, remove []string
	if u.Checkpoint != nil {
		names["#seq"], names["#sub"] = attrSeq, attrSub
		if u.Checkpoint.IsZero() {
			remove = append(remove, "#seq", "#sub")
		} else {
			values[":seq"] = str(u.Checkpoint.SequenceNumber)
			values[":sub"] = num(u.Checkpoint.SubSequence)
			set = append(set, "#seq = :seq", "#sub = :sub")
		}
	}
	if u.Finished {
		names["#f"] = attrFinished
		values[":t"] = &types.AttributeValueMemberBOOL{Value: true}
		set = append(set, "#f = :t")
	}
	if u.SetState {
		names["#st"] = attrState
		if len(u.State) == 0 {
			remove = append(remove, "#st")
		} else {
			values[":st"] = &types.AttributeValueMemberB{Value: slices.Clone(u.State)}
			set = append(set, "#st = :st")
		}
	}
	if u.Release {
		remove = append(remove, "#o")
	}
	var expr []string
	if len(set) > 0 {
		expr = append(expr, "SET "+strings.Join(set, ", "))
	}
	if len(remove) > 0 {
		expr = append(expr, "REMOVE "+strings.Join(remove, ", "))
	}
	if len(expr) == 0 {
		// Nothing to change: still verify the fence, so callers learn of a lost lease.
		_, err := d.Renew(ctx, l)
		return err
	}
	_, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(d.table),
		Key:                       d.key(l.App, l.ShardID),
		UpdateExpression:          aws.String(strings.Join(expr, " ")),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if isConditionFailed(err) {
		return fmt.Errorf("update lease %s/%s: %w", l.App, l.ShardID, ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("update lease %s/%s: %w", l.App, l.ShardID, err)
	}
	return nil
}

// Delete implements Store.
func (d *DynamoStore) Delete(ctx context.Context, app, shardID string) error {
	_, err := d.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(d.table), Key: d.key(app, shardID)})
	if err != nil {
		return fmt.Errorf("delete lease %s/%s: %w", app, shardID, err)
	}
	return nil
}

// fromItem decodes an item; a malformed item is an error naming the attribute,
// never a silently zero lease (a zero checkpoint would replay the shard).
func fromItem(item map[string]types.AttributeValue) (Lease, error) {
	var l Lease
	var err error
	getS := func(name string, required bool) string {
		v, ok := item[name]
		if !ok {
			if required && err == nil {
				err = fmt.Errorf("lease item lacks %s", name)
			}
			return ""
		}
		s, ok := v.(*types.AttributeValueMemberS)
		if !ok {
			if err == nil {
				err = fmt.Errorf("lease item attribute %s is %T, want S", name, v)
			}
			return ""
		}
		return s.Value
	}
	getN := func(name string) int64 {
		v, ok := item[name]
		if !ok {
			return 0
		}
		n, ok := v.(*types.AttributeValueMemberN)
		if !ok {
			if err == nil {
				err = fmt.Errorf("lease item attribute %s is %T, want N", name, v)
			}
			return 0
		}
		i, perr := strconv.ParseInt(n.Value, 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("lease item attribute %s: %w", name, perr)
		}
		return i
	}
	l.App = getS(attrApp, true)
	l.ShardID = getS(attrShard, true)
	l.Stream = getS(attrStream, false)
	l.Owner = getS(attrOwner, false)
	l.Epoch = getN(attrEpoch)
	l.Heartbeat = getN(attrHeartbeat)
	l.Checkpoint.SequenceNumber = getS(attrSeq, false)
	l.Checkpoint.SubSequence = getN(attrSub)
	if v, ok := item[attrParents]; ok {
		ss, ok := v.(*types.AttributeValueMemberSS)
		if !ok {
			return Lease{}, fmt.Errorf("lease item attribute %s is %T, want SS", attrParents, v)
		}
		l.Parents = slices.Clone(ss.Value)
		slices.Sort(l.Parents)
	}
	if v, ok := item[attrFinished]; ok {
		b, ok := v.(*types.AttributeValueMemberBOOL)
		if !ok {
			return Lease{}, fmt.Errorf("lease item attribute %s is %T, want BOOL", attrFinished, v)
		}
		l.Finished = b.Value
	}
	if v, ok := item[attrState]; ok {
		b, ok := v.(*types.AttributeValueMemberB)
		if !ok {
			return Lease{}, fmt.Errorf("lease item attribute %s is %T, want B", attrState, v)
		}
		l.State = b.Value
	}
	if err != nil {
		return Lease{}, err
	}
	return l, nil
}
