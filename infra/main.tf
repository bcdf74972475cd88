# Clickstream on AWS: one Kinesis stream, three Lambda consumers (archive,
# vectors, metrics) on event source mappings, an HTTP collector, the archive
# bucket and the DynamoDB tables, with least-privilege roles, dead letters,
# an Athena table and alarms. Names follow DESIGN.md §5 with var.name as the
# prefix, so the CLI (`clickstream --stream … --bucket …`) and this module agree.
#
# This is a root module without a provider block: configure the aws provider
# where you call it (see examples/minimal) or set AWS_REGION/AWS_PROFILE and run
# terraform here directly.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name

  tags = merge(
    {
      Project     = "clickstream"
      Environment = var.environment
      ManagedBy   = "terraform"
      Deployment  = var.name
    },
    var.tags,
  )

  # Resource names (DESIGN.md §5 when var.name = "clickstream").
  stream_name   = "${var.name}-events"
  bucket_name   = coalesce(var.bucket_name, "${var.name}-archive-${local.account_id}")
  vectors_table = "${var.name}-user-vectors"
  metrics_table = "${var.name}-metrics"
  leases_table  = "${var.name}-leases"
  dlq_name      = "${var.name}-consumer-dlq"

  # "" or "some/prefix/": object keys are "${local.prefix}events/…".
  prefix = var.archive_prefix == "" ? "" : "${trimsuffix(var.archive_prefix, "/")}/"

  # The consumers that are enabled, keyed by function name.
  consumers = {
    for k, v in { archive = var.archive, vectors = var.vectors, metrics = var.metrics } : k => v if v.enabled
  }

  # Every function this deployment runs: the consumers plus the collector.
  functions = merge(
    { for k, v in local.consumers : k => { memory_mb = v.memory_mb, timeout_seconds = v.timeout_seconds, reserved_concurrency = -1 } },
    var.collector.enabled ? {
      collector = {
        memory_mb            = var.collector.memory_mb
        timeout_seconds      = var.collector.timeout_seconds
        reserved_concurrency = var.collector.reserved_concurrency
      }
    } : {},
    var.read_api.enabled ? {
      readapi = {
        memory_mb            = var.read_api.memory_mb
        timeout_seconds      = var.read_api.timeout_seconds
        reserved_concurrency = var.read_api.reserved_concurrency
      }
    } : {},
  )

  dist_dir = coalesce(var.lambda_dist_dir, "${path.module}/../dist")
  zips     = { for k in keys(local.functions) : k => "${local.dist_dir}/lambda-${k}.zip" }
}
