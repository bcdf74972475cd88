package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/clickstream-go/clickstream/internal/retry"
)

// objectStore is where archive objects go: S3 in production (s3Store), a
// map in pure-logic unit tests (memStore).
type objectStore interface {
	// Put stores body at key atomically: readers see the whole object or
	// none (S3 PutObject, or a completed multipart upload).
	Put(ctx context.Context, key string, body []byte) error
	// Delete removes the keys; missing keys are not an error.
	Delete(ctx context.Context, keys []string) error
	// AbortUploads aborts unfinished multipart uploads to key, left behind
	// by a process that died mid-upload (invisible, but billed).
	AbortUploads(ctx context.Context, key string) error
}

// S3API is the part of the S3 client the archive writer uses.
type S3API interface {
	manager.UploadAPIClient
	DeleteObjects(context.Context, *s3.DeleteObjectsInput, ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
	ListMultipartUploads(context.Context, *s3.ListMultipartUploadsInput, ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error)
}

var _ S3API = (*s3.Client)(nil)

// ContentType is the media type archive objects are stored with.
const ContentType = "application/vnd.apache.parquet"

// s3Store uploads with the SDK's upload manager: a single PutObject below
// PartSize, a multipart upload above it (parts in parallel; aborted on
// failure). Either way the object becomes visible only when complete.
type s3Store struct {
	client   S3API
	uploader *manager.Uploader
	bucket   string
	attempts int
	backoff  time.Duration // first retry delay; doubles, capped at maxBackoff
	log      *slog.Logger
	retries  func() // counts a retried upload
}

const maxBackoff = 10 * time.Second

func newS3Store(client S3API, cfg Config, m *metrics) *s3Store {
	// manager.Uploader is deprecated in favour of feature/s3/transfermanager,
	// which is still v0.x; the uploader is stable and does what we need.
	up := manager.NewUploader(client, func(u *manager.Uploader) { //nolint:staticcheck
		u.PartSize = cfg.PartSize
		u.Concurrency = cfg.PartConcurrency
	})
	return &s3Store{
		client: client, uploader: up, bucket: cfg.Bucket,
		attempts: cfg.UploadAttempts, backoff: 200 * time.Millisecond,
		log: cfg.Logger, retries: m.uploadRetries.Inc,
	}
}

// Put uploads body to key, retrying failed attempts (on top of the SDK's own
// retries of each request) with jittered exponential back-off.
func (s *s3Store) Put(ctx context.Context, key string, body []byte) error {
	for attempt := 1; ; attempt++ {
		_, err := s.uploader.Upload(ctx, &s3.PutObjectInput{
			Bucket:      aws.String(s.bucket),
			Key:         aws.String(key),
			Body:        bytes.NewReader(body),
			ContentType: aws.String(ContentType),
		})
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || attempt >= s.attempts {
			// The uploader aborts a failed multipart upload, but not when
			// ctx is what failed it; abort with a context of our own so no
			// invisible parts stay behind (a redo would abort them too).
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if aerr := s.AbortUploads(actx, key); aerr != nil {
				s.log.LogAttrs(ctx, slog.LevelWarn, "abort unfinished upload", slog.String("key", key), slog.Any("err", aerr))
			}
			cancel()
			return fmt.Errorf("upload s3://%s/%s (attempt %d): %w", s.bucket, key, attempt, err)
		}
		s.retries()
		s.log.LogAttrs(ctx, slog.LevelWarn, "archive upload failed, retrying",
			slog.String("key", key), slog.Int("attempt", attempt), slog.Any("err", err))
		if err := retry.Sleep(ctx, retry.Delay(attempt, s.backoff, maxBackoff)); err != nil {
			return fmt.Errorf("upload s3://%s/%s: %w", s.bucket, key, err)
		}
	}
}

// Delete removes keys with DeleteObjects, 1000 per call.
func (s *s3Store) Delete(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		ids := make([]s3types.ObjectIdentifier, n)
		for i, k := range keys[:n] {
			ids[i] = s3types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.bucket),
			Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return fmt.Errorf("delete objects in s3://%s: %w", s.bucket, err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("delete s3://%s/%s: %s: %s", s.bucket, aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
		}
		keys = keys[n:]
	}
	return nil
}

// AbortUploads aborts every unfinished multipart upload of exactly key.
func (s *s3Store) AbortUploads(ctx context.Context, key string) error {
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.bucket), Prefix: aws.String(key)}
	for {
		out, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return fmt.Errorf("list multipart uploads of s3://%s/%s: %w", s.bucket, key, err)
		}
		for _, u := range out.Uploads {
			if aws.ToString(u.Key) != key {
				continue
			}
			_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
				Bucket: aws.String(s.bucket), Key: u.Key, UploadId: u.UploadId,
			})
			var nsu *s3types.NoSuchUpload
			if err != nil && !errors.As(err, &nsu) {
				return fmt.Errorf("abort multipart upload of s3://%s/%s: %w", s.bucket, key, err)
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}
