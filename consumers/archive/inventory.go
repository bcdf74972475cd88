package archive

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"
)

// InventoryAPI is the part of the S3 client List and Stats use.
type InventoryAPI interface {
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

var _ InventoryAPI = (*s3.Client)(nil)

// Filter selects archive partitions. The zero Filter selects everything.
type Filter struct {
	// Type selects one event type; "" selects all.
	Type string
	// From and To select event-time hours in [From, To); zero means
	// unbounded.
	From, To time.Time
}

func (f Filter) match(info ObjectInfo) bool {
	if f.Type != "" && info.Type != f.Type {
		return false
	}
	if f.From.IsZero() && f.To.IsZero() {
		return true
	}
	h, err := time.Parse("2006-01-02 15", info.Date+" "+info.Hour)
	if err != nil {
		return false
	}
	return (f.From.IsZero() || !h.Before(f.From.UTC().Truncate(time.Hour))) && (f.To.IsZero() || h.Before(f.To))
}

// Inventory describes what the archive holds.
type Inventory struct {
	Bucket, Prefix string
	Partitions     []PartitionStats // sorted by type, date, hour
	Files          int
	Bytes          int64
	// Rows is the number of archived events; -1 when not counted (List).
	Rows int64
	// DeadLetters and DeadLetterBytes count the bad records under errors/
	// (Stats only; -1 in List).
	DeadLetters     int
	DeadLetterBytes int64
	// Foreign counts keys under events/ that are not archive objects.
	Foreign int
}

// PartitionStats describes one partition.
type PartitionStats struct {
	Type, Date, Hour string
	Files            int
	Bytes            int64
	Rows             int64 // -1 when not counted
	Objects          []ObjectStats
}

// Path is the partition's path below PREFIX/events/.
func (p PartitionStats) Path() string {
	return "type=" + EscapePartitionValue(p.Type) + "/dt=" + p.Date + "/hour=" + p.Hour
}

// ObjectStats describes one archive object.
type ObjectStats struct {
	ObjectInfo
	Size         int64
	LastModified time.Time
	Rows         int64 // -1 when not counted
}

// List lists the archive's partitions with their files and bytes, from
// object listings only (cheap: one request per 1000 objects).
func List(ctx context.Context, api InventoryAPI, bucket, prefix string, f Filter) (Inventory, error) {
	inv := Inventory{Bucket: bucket, Prefix: prefix, Rows: -1, DeadLetters: -1, DeadLetterBytes: -1}
	listPrefix := normPrefix(prefix) + "events/"
	if f.Type != "" {
		listPrefix += "type=" + EscapePartitionValue(f.Type) + "/"
	}
	parts := map[string]*PartitionStats{}
	err := listObjects(ctx, api, bucket, listPrefix, func(key string, size int64, mod time.Time) {
		info, err := ParseObjectKey(prefix, key)
		if err != nil {
			inv.Foreign++
			return
		}
		if !f.match(info) {
			return
		}
		p := parts[info.PartitionPath()]
		if p == nil {
			p = &PartitionStats{Type: info.Type, Date: info.Date, Hour: info.Hour, Rows: -1}
			parts[info.PartitionPath()] = p
		}
		p.Files++
		p.Bytes += size
		p.Objects = append(p.Objects, ObjectStats{ObjectInfo: info, Size: size, LastModified: mod, Rows: -1})
		inv.Files++
		inv.Bytes += size
	})
	if err != nil {
		return inv, err
	}
	for _, p := range parts {
		inv.Partitions = append(inv.Partitions, *p)
	}
	slices.SortFunc(inv.Partitions, func(a, b PartitionStats) int {
		return cmp.Or(strings.Compare(a.Type, b.Type), strings.Compare(a.Date, b.Date), strings.Compare(a.Hour, b.Hour))
	})
	return inv, nil
}

// statsConcurrency is how many object footers Stats reads at once.
const statsConcurrency = 16

// Stats is List plus row counts, read from each object's Parquet footer
// (one ranged GET of the last 64 KiB per object), and the dead letters
// under PREFIX/errors/.
func Stats(ctx context.Context, api InventoryAPI, bucket, prefix string, f Filter) (Inventory, error) {
	inv, err := List(ctx, api, bucket, prefix, f)
	if err != nil {
		return inv, err
	}
	type job struct{ p, o int }
	jobs := make(chan job)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for range statsConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				o := &inv.Partitions[j.p].Objects[j.o]
				n, err := countRows(ctx, api, bucket, o.Key, o.Size)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				o.Rows = n
				mu.Unlock()
			}
		}()
	}
	for p := range inv.Partitions {
		for o := range inv.Partitions[p].Objects {
			jobs <- job{p, o}
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return inv, firstErr
	}
	inv.Rows = 0
	for p := range inv.Partitions {
		part := &inv.Partitions[p]
		part.Rows = 0
		for _, o := range part.Objects {
			part.Rows += o.Rows
		}
		inv.Rows += part.Rows
	}
	inv.DeadLetters, inv.DeadLetterBytes = 0, 0
	err = listObjects(ctx, api, bucket, normPrefix(prefix)+"errors/", func(key string, size int64, _ time.Time) {
		inv.DeadLetters++
		inv.DeadLetterBytes += size
	})
	return inv, err
}

func listObjects(ctx context.Context, api InventoryAPI, bucket, prefix string, fn func(key string, size int64, mod time.Time)) error {
	p := s3.NewListObjectsV2Paginator(api, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			fn(aws.ToString(o.Key), aws.ToInt64(o.Size), aws.ToTime(o.LastModified))
		}
	}
	return nil
}

// countRows reads the row count from an object's footer.
func countRows(ctx context.Context, api InventoryAPI, bucket, key string, size int64) (int64, error) {
	r := &s3ReaderAt{ctx: ctx, api: api, bucket: bucket, key: key}
	f, err := parquet.OpenFile(r, size,
		parquet.SkipMagicBytes(true), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true),
		parquet.OptimisticRead(true), parquet.ReadBufferSize(64<<10))
	if err != nil {
		return -1, fmt.Errorf("read footer of s3://%s/%s: %w", bucket, key, err)
	}
	return f.NumRows(), nil
}

// s3ReaderAt reads byte ranges of one object.
type s3ReaderAt struct {
	ctx         context.Context
	api         InventoryAPI
	bucket, key string
}

func (r *s3ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	out, err := r.api.GetObject(r.ctx, &s3.GetObjectInput{
		Bucket: aws.String(r.bucket), Key: aws.String(r.key),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1)),
	}, func(o *s3.Options) {
		// A range has no checksum of its own: S3-compatible servers may send
		// the whole object's, which a range can never match. The Parquet
		// footer is validated by parsing it.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	if err != nil {
		return 0, err
	}
	defer out.Body.Close()
	n, err := io.ReadFull(out.Body, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}

// WriteText renders the inventory as a table: one line per partition
// (with rows when counted), then totals; with objects, one line per object
// under its partition.
func (inv Inventory) WriteText(w io.Writer, objects bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	rows := func(n int64) string {
		if n < 0 {
			return "-"
		}
		return fmt.Sprint(n)
	}
	fmt.Fprintf(tw, "PARTITION\tFILES\tROWS\tBYTES\t\n")
	for _, p := range inv.Partitions {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t\n", p.Path(), p.Files, rows(p.Rows), p.Bytes)
		if objects {
			for _, o := range p.Objects {
				name := o.Key[strings.LastIndexByte(o.Key, '/')+1:]
				fmt.Fprintf(tw, "  %s\t\t%s\t%d\t\n", name, rows(o.Rows), o.Size)
			}
		}
	}
	fmt.Fprintf(tw, "TOTAL %d partitions\t%d\t%s\t%d\t\n", len(inv.Partitions), inv.Files, rows(inv.Rows), inv.Bytes)
	if err := tw.Flush(); err != nil {
		return err
	}
	if inv.DeadLetters >= 0 {
		fmt.Fprintf(w, "dead letters (bad records) under %serrors/: %d (%d bytes)\n", normPrefix(inv.Prefix), inv.DeadLetters, inv.DeadLetterBytes)
	}
	if inv.Foreign > 0 {
		fmt.Fprintf(w, "other keys under %sevents/ (not archive objects): %d\n", normPrefix(inv.Prefix), inv.Foreign)
	}
	return nil
}
