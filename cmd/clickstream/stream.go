package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/clickstream-go/clickstream/internal/cli"
	"github.com/clickstream-go/clickstream/internal/retry"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/setup"
	"github.com/clickstream-go/clickstream/kpl"
)

func streamCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "stream",
		Short: "inspect the Kinesis stream",
		Subs:  []*cli.Command{streamStatsCommand(stdout)},
	}
}

type shardStats struct {
	id                      string
	open                    bool
	kinesisRecords, records int
	bytes                   int64
	bad                     int
	types                   map[string]int
}

func streamStatsCommand(stdout io.Writer) *cli.Command {
	var (
		stream  string
		timeout time.Duration
	)
	return &cli.Command{
		Name:  "stats",
		Short: "read every shard from the oldest record and count what is there",
		Long: `Reads every shard of the stream from TRIM_HORIZON to the latest record and prints,
per shard, the Kinesis records, the user records inside them (KPL aggregates are
de-aggregated), bytes, events per type and undecodable or invalid events.

It is a diagnostic for small streams (the local stack, tests, demos): on a large
stream it reads everything retained, at the 5 GetRecords calls/s/shard limit.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&stream, "stream", setup.DefaultStream, "Kinesis stream name")
			fs.DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
		},
		Run: func(ctx context.Context, args []string) error {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			c, err := awsx.Load(ctx)
			if err != nil {
				return err
			}
			shards, err := listShards(ctx, c.Kinesis, stream)
			if err != nil {
				return err
			}
			var all []*shardStats
			total := shardStats{types: map[string]int{}}
			for _, sh := range shards {
				st, err := readShard(ctx, c.Kinesis, stream, sh)
				if err != nil {
					return err
				}
				all = append(all, st)
				total.kinesisRecords += st.kinesisRecords
				total.records += st.records
				total.bytes += st.bytes
				total.bad += st.bad
				for k, v := range st.types {
					total.types[k] += v
				}
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(tw, "shard\tstate\tkinesis records\tevents\tbytes\tclick\timpression\taccess\tother\tbad\t\n")
			row := func(st *shardStats, state string) {
				other := st.records - st.bad - st.types[event.TypeClick] - st.types[event.TypeImpression] - st.types[event.TypeAccess]
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", st.id, state, st.kinesisRecords, st.records, st.bytes,
					st.types[event.TypeClick], st.types[event.TypeImpression], st.types[event.TypeAccess], other, st.bad)
			}
			for _, st := range all {
				state := "closed"
				if st.open {
					state = "open"
				}
				row(st, state)
			}
			total.id = "total"
			row(&total, "")
			return tw.Flush()
		},
	}
}

func listShards(ctx context.Context, kc *kinesis.Client, stream string) ([]types.Shard, error) {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := kc.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	sort.Slice(shards, func(i, j int) bool { return aws.ToString(shards[i].ShardId) < aws.ToString(shards[j].ShardId) })
	return shards, nil
}

func readShard(ctx context.Context, kc *kinesis.Client, stream string, sh types.Shard) (*shardStats, error) {
	st := &shardStats{id: aws.ToString(sh.ShardId), types: map[string]int{}}
	st.open = sh.SequenceNumberRange == nil || sh.SequenceNumberRange.EndingSequenceNumber == nil
	it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		return nil, fmt.Errorf("get iterator for %s: %w", st.id, err)
	}
	iter := it.ShardIterator
	backoff := 200 * time.Millisecond
	for iter != nil {
		out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
		var thr *types.ProvisionedThroughputExceededException
		if errors.As(err, &thr) {
			if err := retry.Sleep(ctx, backoff); err != nil {
				return nil, err
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get records from %s: %w", st.id, err)
		}
		for _, r := range out.Records {
			st.kinesisRecords++
			subs, err := kpl.Deaggregate(r.Data, aws.ToString(r.PartitionKey))
			if err != nil {
				st.records++
				st.bad++
				continue
			}
			for _, s := range subs {
				st.records++
				st.bytes += int64(len(s.Data))
				ev, err := event.Decode(s.Data)
				if err != nil {
					st.bad++
					continue
				}
				st.types[ev.Type]++
			}
		}
		iter = out.NextShardIterator
		if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			break
		}
		// Stay under the 5 GetRecords calls/s/shard limit.
		if err := retry.Sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return st, nil
}
