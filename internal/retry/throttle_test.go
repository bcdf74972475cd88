package retry

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

type entryErr struct{ code string }

func (e entryErr) Error() string     { return e.code }
func (e entryErr) ErrorCode() string { return e.code }

func TestIsThrottle_TypedServiceErrorsCodesAndWrapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&ktypes.ProvisionedThroughputExceededException{}, true},
		{&ktypes.LimitExceededException{}, true},
		{&ktypes.KMSThrottlingException{}, true},
		{&types.ProvisionedThroughputExceededException{}, true},
		{&types.RequestLimitExceeded{}, true},
		{&smithy.GenericAPIError{Code: "ThrottlingException"}, true},
		{fmt.Errorf("put: %w", entryErr{"ProvisionedThroughputExceededException"}), true},
		{&ktypes.ResourceNotFoundException{}, false},
		{&smithy.GenericAPIError{Code: "ValidationException"}, false},
		{errors.New("connection reset"), false},
		{nil, false},
	} {
		if got := IsThrottle(tc.err); got != tc.want {
			t.Errorf("IsThrottle(%T %v) = %v, want %v", tc.err, tc.err, got, tc.want)
		}
	}
}
