#!/usr/bin/env bash
# LocalStack ready hook: the same resources `clickstream setup` creates, with the
# default names of DESIGN.md §5. Idempotent (errors for existing resources are ignored).
set -u
awslocal kinesis create-stream --stream-name clickstream-events --shard-count 4 || true
for t in clickstream-leases:app:shard_id clickstream-user-vectors:user_id: clickstream-metrics:pk:sk; do
  IFS=: read -r name hash range <<<"$t"
  attrs="AttributeName=$hash,AttributeType=S"
  keys="AttributeName=$hash,KeyType=HASH"
  if [ -n "$range" ]; then
    attrs="$attrs AttributeName=$range,AttributeType=S"
    keys="$keys AttributeName=$range,KeyType=RANGE"
  fi
  # shellcheck disable=SC2086
  awslocal dynamodb create-table --table-name "$name" --billing-mode PAY_PER_REQUEST \
    --attribute-definitions $attrs --key-schema $keys || true
done
awslocal dynamodb update-time-to-live --table-name clickstream-metrics \
  --time-to-live-specification Enabled=true,AttributeName=expires_at || true
awslocal s3 mb s3://clickstream-archive || true
