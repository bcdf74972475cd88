package retry

import (
	"maps"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
)

// throttleCodes are the error codes of throttling: the SDK's own list
// (Kinesis' ProvisionedThroughputExceededException and
// LimitExceededException, DynamoDB's, S3's SlowDown, ...) plus KMS
// throttling of encrypted streams, which the SDK does not list.
var throttleCodes = func() awsretry.ThrottleErrorCode {
	codes := maps.Clone(awsretry.DefaultThrottleErrorCodes)
	codes["KMSThrottlingException"] = struct{}{}
	return awsretry.ThrottleErrorCode{Codes: codes}
}()

// IsThrottle reports whether err is AWS throttling: a service or SDK error
// — or any error in its chain with an ErrorCode() string method, such as a
// PutRecords entry's error — whose code is a throttling code. The one
// classifier the producer, the consumer runtime and the stores use, so
// throttling is counted and backed off alike everywhere.
func IsThrottle(err error) bool {
	return err != nil && throttleCodes.IsErrorThrottle(err) == aws.TrueTernary
}
