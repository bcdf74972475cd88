package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/clickstream-go/clickstream/consumers"
	"github.com/clickstream-go/clickstream/event"
	"github.com/clickstream-go/clickstream/internal/awsx"
	"github.com/clickstream-go/clickstream/internal/cli"
	"github.com/clickstream-go/clickstream/internal/setup"
)

func streamCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "stream",
		Short: "inspect the Kinesis stream",
		Subs:  []*cli.Command{streamStatsCommand(stdout), streamConsumersCommand(stdout), streamDeregisterCommand(stdout)},
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
			shards, err := consumers.ListShards(ctx, c.Kinesis, stream)
			if err != nil {
				return err
			}
			var all []*shardStats
			total := shardStats{types: map[string]int{}}
			for _, sh := range shards {
				recs, n, err := consumers.ReadShard(ctx, c.Kinesis, stream, sh, nil)
				if err != nil {
					return err
				}
				st := statsOf(sh, recs, n)
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

// statsOf counts a shard's records.
func statsOf(sh consumers.StreamShard, recs []consumers.Record, kinesisRecords int) *shardStats {
	st := &shardStats{id: sh.ID, open: !sh.Closed, kinesisRecords: kinesisRecords, records: len(recs), types: map[string]int{}}
	for i := range recs {
		st.bytes += int64(len(recs[i].Data))
		if recs[i].Err != nil {
			st.bad++
			continue
		}
		st.types[recs[i].Event.Type]++
	}
	return st
}

func streamConsumersCommand(stdout io.Writer) *cli.Command {
	var stream string
	return &cli.Command{
		Name:  "consumers",
		Short: "list the stream's enhanced fan-out consumers",
		Long: `Lists the stream consumers registered for enhanced fan-out: the ones
` + "`clickstream consume --read-mode efo`" + ` registers (named after each application),
and any others (Lambda event source mappings, other tools). Each costs money on
AWS for every shard-hour it is registered, read or not; remove one that is no
longer used with ` + "`clickstream stream deregister-consumer NAME`" + `.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&stream, "stream", setup.DefaultStream, "Kinesis stream name")
		},
		Run: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return cli.UsageErr("unexpected arguments %q", args)
			}
			c, err := awsx.Load(ctx)
			if err != nil {
				return err
			}
			list, err := consumers.ListConsumers(ctx, c.Kinesis, stream)
			if err != nil {
				return err
			}
			if len(list) == 0 {
				fmt.Fprintf(stdout, "no stream consumers registered on %s\n", stream)
				return nil
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "NAME\tSTATUS\tCREATED\tARN\n")
			for _, sc := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", sc.Name, sc.Status, sc.Created.UTC().Format(time.RFC3339), sc.ARN)
			}
			return tw.Flush()
		},
	}
}

func streamDeregisterCommand(stdout io.Writer) *cli.Command {
	var stream string
	return &cli.Command{
		Name:  "deregister-consumer",
		Args:  "NAME...",
		Short: "deregister enhanced fan-out consumers (they cost money while registered)",
		Long: `Deregisters the named stream consumers. Their subscriptions end at once; a
` + "`clickstream consume --read-mode efo`" + ` process still running registers its
consumer again when it next subscribes, so stop it first (or switch it to
--read-mode poll): its checkpoints are kept either way.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&stream, "stream", setup.DefaultStream, "Kinesis stream name")
		},
		Run: func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return cli.UsageErr("name at least one consumer (clickstream stream consumers lists them)")
			}
			c, err := awsx.Load(ctx)
			if err != nil {
				return err
			}
			for _, name := range args {
				if err := consumers.DeregisterConsumer(ctx, c.Kinesis, stream, name); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "deregistered %s from %s (DELETING for a few seconds, then gone)\n", name, stream)
			}
			return nil
		},
	}
}
