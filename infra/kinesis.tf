# The event stream: partition key = user id (DESIGN.md §1).

resource "aws_kinesis_stream" "events" {
  name             = local.stream_name
  shard_count      = var.shard_count
  retention_period = var.stream_retention_hours

  stream_mode_details {
    stream_mode = var.shard_count == null ? "ON_DEMAND" : "PROVISIONED"
  }

  # Server-side encryption. The AWS managed key (alias/aws/kinesis) needs no
  # KMS permissions in producer or consumer roles; a customer key does.
  encryption_type = "KMS"
  kms_key_id      = coalesce(var.kms_key_arn, "alias/aws/kinesis")

  shard_level_metrics = var.shard_level_metrics

  tags = local.tags
}

# Enhanced fan-out consumers, one per consumer that asks for it: a dedicated
# 2 MiB/s per shard read pipe pushed over HTTP/2, instead of sharing the
# shard's 2 MiB/s and 5 GetRecords/s with every other reader. Three polling
# consumers of a shard written at its full 1 MiB/s would need 3 MiB/s out.
resource "aws_kinesis_stream_consumer" "efo" {
  for_each = { for k, v in local.consumers : k => v if v.enhanced_fan_out }

  name       = "${var.name}-${each.key}"
  stream_arn = aws_kinesis_stream.events.arn
}
