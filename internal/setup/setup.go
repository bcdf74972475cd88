// Package setup creates the AWS resources a Clickstream deployment needs — the
// Kinesis stream, the DynamoDB tables and the S3 bucket — idempotently. It
// backs `clickstream setup` for local stacks and tests; on AWS, Terraform in
// infra/ creates the same resources with the same names and key schemas.
package setup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kintypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/clickstream-go/clickstream/internal/awsx"

	"github.com/clickstream-go/clickstream/internal/retry"
)

// Default resource names (docs/DESIGN.md §5). Every one is overridable.
const (
	DefaultStream       = "clickstream-events"
	DefaultShards       = 4
	DefaultBucket       = "clickstream-archive"
	DefaultVectorsTable = "clickstream-user-vectors"
	DefaultMetricsTable = "clickstream-metrics"
	DefaultLeasesTable  = "clickstream-leases"
)

// Resources names what a deployment uses.
type Resources struct {
	Stream   string
	Shards   int  // provisioned shard count; ignored when OnDemand
	OnDemand bool // on-demand capacity mode (kinesis-local and AWS; not kinesalite)

	Bucket       string
	VectorsTable string
	MetricsTable string
	LeasesTable  string
}

// Defaults returns the default names: a 4-shard provisioned stream.
func Defaults() Resources {
	return Resources{
		Stream: DefaultStream, Shards: DefaultShards, Bucket: DefaultBucket,
		VectorsTable: DefaultVectorsTable, MetricsTable: DefaultMetricsTable, LeasesTable: DefaultLeasesTable,
	}
}

// Table key schemas. The consumers own the item layouts; these are the keys.
var (
	// LeasesTable: one item per (application, shard): lease owner, expiry, checkpoint.
	LeasesTable = TableSpec{Hash: "app", Range: "shard_id"}
	// VectorsTable: one item per user.
	VectorsTable = TableSpec{Hash: "user_id"}
	// MetricsTable: pk = metric and dimensions, sk = window start and shard;
	// rows expire through TTL on expires_at (epoch seconds).
	MetricsTable = TableSpec{Hash: "pk", Range: "sk", TTLAttribute: "expires_at"}
)

// TableSpec is the key schema of a table; all key attributes are strings.
type TableSpec struct {
	Name         string
	Hash         string
	Range        string // empty: no sort key
	TTLAttribute string // empty: no TTL
}

// Named returns a copy of the spec with the table name set.
func (s TableSpec) Named(name string) TableSpec { s.Name = name; return s }

// Status says what Ensure did with one resource.
type Status struct {
	Kind    string // "stream", "table", "bucket"
	Name    string
	Created bool // false: it existed already
	Detail  string
}

func (s Status) String() string {
	verb := "found  "
	if s.Created {
		verb = "created"
	}
	out := fmt.Sprintf("%s %-6s %s", verb, s.Kind, s.Name)
	if s.Detail != "" {
		out += " (" + s.Detail + ")"
	}
	return out
}

// Ensure creates every resource that is missing and reports each one,
// created or found, to report (which may be nil). It waits until the stream
// and tables are ACTIVE.
func Ensure(ctx context.Context, c *awsx.Clients, r Resources, report func(Status)) error {
	if report == nil {
		report = func(Status) {}
	}
	st, err := EnsureStream(ctx, c.Kinesis, r.Stream, r.Shards, r.OnDemand)
	if err != nil {
		return err
	}
	report(st)
	for _, spec := range []TableSpec{
		LeasesTable.Named(r.LeasesTable),
		VectorsTable.Named(r.VectorsTable),
		MetricsTable.Named(r.MetricsTable),
	} {
		st, err := EnsureTable(ctx, c.DynamoDB, spec)
		if err != nil {
			return err
		}
		report(st)
	}
	st, err = EnsureBucket(ctx, c.S3, r.Bucket, c.Config.Region)
	if err != nil {
		return err
	}
	report(st)
	return nil
}

// KinesisAPI is the part of the Kinesis client setup uses.
type KinesisAPI interface {
	CreateStream(context.Context, *kinesis.CreateStreamInput, ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error)
	DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// EnsureStream creates the stream if missing and waits until it is ACTIVE.
func EnsureStream(ctx context.Context, kc KinesisAPI, name string, shards int, onDemand bool) (Status, error) {
	st := Status{Kind: "stream", Name: name}
	sum, err := describeStream(ctx, kc, name)
	if err != nil {
		return st, err
	}
	if sum == nil {
		in := &kinesis.CreateStreamInput{StreamName: aws.String(name)}
		if onDemand {
			in.StreamModeDetails = &kintypes.StreamModeDetails{StreamMode: kintypes.StreamModeOnDemand}
		} else {
			if shards <= 0 {
				shards = DefaultShards
			}
			in.ShardCount = aws.Int32(int32(shards))
		}
		_, err := kc.CreateStream(ctx, in)
		var inUse *kintypes.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) {
			return st, fmt.Errorf("create stream %s: %w", name, err)
		}
		st.Created = err == nil
	}
	for {
		sum, err = describeStream(ctx, kc, name)
		if err != nil {
			return st, err
		}
		if sum != nil && sum.StreamStatus != kintypes.StreamStatusCreating && sum.StreamStatus != kintypes.StreamStatusUpdating {
			break
		}
		if err := retry.Sleep(ctx, 100*time.Millisecond); err != nil {
			return st, fmt.Errorf("wait for stream %s: %w", name, err)
		}
	}
	mode := "provisioned"
	if sum.StreamModeDetails != nil && sum.StreamModeDetails.StreamMode == kintypes.StreamModeOnDemand {
		mode = "on-demand"
	}
	st.Detail = fmt.Sprintf("%s, %d open shards, %s", mode, aws.ToInt32(sum.OpenShardCount), sum.StreamStatus)
	return st, nil
}

func describeStream(ctx context.Context, kc KinesisAPI, name string) (*kintypes.StreamDescriptionSummary, error) {
	out, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	var nf *kintypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("describe stream %s: %w", name, err)
	}
	return out.StreamDescriptionSummary, nil
}

// DynamoDBAPI is the part of the DynamoDB client setup uses.
type DynamoDBAPI interface {
	CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	UpdateTimeToLive(context.Context, *dynamodb.UpdateTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
	DescribeTimeToLive(context.Context, *dynamodb.DescribeTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
}

// EnsureTable creates an on-demand table if missing, waits until it is
// ACTIVE and enables TTL when the spec names a TTL attribute.
func EnsureTable(ctx context.Context, dc DynamoDBAPI, spec TableSpec) (Status, error) {
	st := Status{Kind: "table", Name: spec.Name}
	_, err := dc.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(spec.Name)})
	var nf *ddbtypes.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		in := &dynamodb.CreateTableInput{
			TableName:   aws.String(spec.Name),
			BillingMode: ddbtypes.BillingModePayPerRequest,
			AttributeDefinitions: []ddbtypes.AttributeDefinition{
				{AttributeName: aws.String(spec.Hash), AttributeType: ddbtypes.ScalarAttributeTypeS},
			},
			KeySchema: []ddbtypes.KeySchemaElement{
				{AttributeName: aws.String(spec.Hash), KeyType: ddbtypes.KeyTypeHash},
			},
		}
		if spec.Range != "" {
			in.AttributeDefinitions = append(in.AttributeDefinitions,
				ddbtypes.AttributeDefinition{AttributeName: aws.String(spec.Range), AttributeType: ddbtypes.ScalarAttributeTypeS})
			in.KeySchema = append(in.KeySchema,
				ddbtypes.KeySchemaElement{AttributeName: aws.String(spec.Range), KeyType: ddbtypes.KeyTypeRange})
		}
		_, err := dc.CreateTable(ctx, in)
		var inUse *ddbtypes.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) {
			return st, fmt.Errorf("create table %s: %w", spec.Name, err)
		}
		st.Created = err == nil
	case err != nil:
		return st, fmt.Errorf("describe table %s: %w", spec.Name, err)
	}
	w := dynamodb.NewTableExistsWaiter(dc, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(spec.Name)}, 2*time.Minute); err != nil {
		return st, fmt.Errorf("wait for table %s: %w", spec.Name, err)
	}
	st.Detail = "on-demand, key " + spec.Hash
	if spec.Range != "" {
		st.Detail += "+" + spec.Range
	}
	if spec.TTLAttribute != "" {
		ttl, err := dc.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(spec.Name)})
		if err != nil {
			return st, fmt.Errorf("describe TTL of %s: %w", spec.Name, err)
		}
		if d := ttl.TimeToLiveDescription; d == nil || d.TimeToLiveStatus == ddbtypes.TimeToLiveStatusDisabled {
			_, err := dc.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
				TableName: aws.String(spec.Name),
				TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{
					AttributeName: aws.String(spec.TTLAttribute), Enabled: aws.Bool(true),
				},
			})
			if err != nil {
				return st, fmt.Errorf("enable TTL on %s: %w", spec.Name, err)
			}
		}
		st.Detail += ", TTL " + spec.TTLAttribute
	}
	return st, nil
}

// S3API is the part of the S3 client setup uses.
type S3API interface {
	HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	CreateBucket(context.Context, *s3.CreateBucketInput, ...func(*s3.Options)) (*s3.CreateBucketOutput, error)
}

// EnsureBucket creates the bucket in region if missing.
func EnsureBucket(ctx context.Context, sc S3API, name, region string) (Status, error) {
	st := Status{Kind: "bucket", Name: name}
	_, err := sc.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(name)})
	if err == nil {
		return st, nil
	}
	var nf *s3types.NotFound
	if !errors.As(err, &nf) {
		return st, fmt.Errorf("head bucket %s: %w", name, err)
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if region != "" && region != "us-east-1" { // us-east-1 rejects an explicit location constraint
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(region)}
	}
	_, err = sc.CreateBucket(ctx, in)
	var owned *s3types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return st, fmt.Errorf("create bucket %s: %w", name, err)
	}
	st.Created = err == nil
	return st, nil
}
