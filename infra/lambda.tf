# The Lambda functions (Go, provided.al2023, handler "bootstrap") and the
# Kinesis event source mappings that drive the consumers. Zips are built
# outside Terraform by `make lambdas` (dist/lambda-<name>.zip); their SHA-256
# makes a rebuilt zip a code update and an unchanged one a no-op.

locals {
  # Environment per function. Variable names are the CLI's flags
  # (--stream → CLICKSTREAM_STREAM), so handlers and `clickstream consume`
  # read the same settings.
  common_env = { CLICKSTREAM_LOG_LEVEL = var.log_level }
  prefix_env = local.prefix == "" ? {} : { CLICKSTREAM_PREFIX = local.prefix }
  consumer_env = merge(local.prefix_env, {
    CLICKSTREAM_STREAM       = local.stream_name
    CLICKSTREAM_BUCKET       = local.bucket_name
    CLICKSTREAM_LEASES_TABLE = local.leases_table
  })
  function_env = {
    archive = local.consumer_env
    vectors = merge(local.consumer_env, { CLICKSTREAM_VECTORS_TABLE = local.vectors_table })
    metrics = merge(local.consumer_env, { CLICKSTREAM_METRICS_TABLE = local.metrics_table })
    collector = merge(
      {
        CLICKSTREAM_STREAM              = local.stream_name
        CLICKSTREAM_API_KEYS_SECRET_ARN = local.api_keys_secret_arn
      },
      length(var.collector.allowed_origins) == 0 ? {} : { CLICKSTREAM_ALLOWED_ORIGINS = join(",", var.collector.allowed_origins) },
    )
    readapi = merge(
      {
        CLICKSTREAM_VECTORS_TABLE = local.vectors_table
        CLICKSTREAM_METRICS_TABLE = local.metrics_table
        CLICKSTREAM_READ_API_AUTH = var.read_api.auth
      },
      local.read_api_keys_secret_arn == null ? {} : { CLICKSTREAM_API_KEYS_SECRET_ARN = local.read_api_keys_secret_arn },
    )
  }
}

resource "aws_cloudwatch_log_group" "fn" {
  for_each = local.functions

  # The name Lambda logs to by default, created here to set retention.
  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}

resource "aws_lambda_function" "fn" {
  for_each = local.functions

  function_name = "${var.name}-${each.key}"
  description   = "Clickstream ${each.key} (${var.name})"
  role          = aws_iam_role.fn[each.key].arn
  runtime       = "provided.al2023"
  architectures = [var.lambda_architecture]
  handler       = "bootstrap"

  filename = local.zips[each.key]
  # try(): a missing zip fails the precondition below with a clear message
  # instead of a bare "no such file" from the function.
  source_code_hash = try(filebase64sha256(local.zips[each.key]), null)

  memory_size                    = each.value.memory_mb
  timeout                        = each.value.timeout_seconds
  reserved_concurrent_executions = each.value.reserved_concurrency

  environment {
    variables = merge(local.common_env, local.function_env[each.key], lookup(var.lambda_environment, each.key, {}))
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = fileexists(local.zips[each.key])
      error_message = "Lambda zip ${local.zips[each.key]} is missing: run `make lambdas` at the repository root (or set lambda_dist_dir)."
    }
  }

  # The log group must exist before the first invocation creates it with
  # infinite retention; the role must allow writing logs.
  depends_on = [aws_cloudwatch_log_group.fn, aws_iam_role_policy.fn]
}

# Failed-batch notices: after maximum_retry_attempts or maximum_record_age,
# Lambda sends the shard id and sequence range of the batch it gives up on
# here and moves on, so one poison record never blocks a shard. The records
# themselves stay on the stream until its retention ends.
resource "aws_sqs_queue" "dlq" {
  name                      = local.dlq_name
  message_retention_seconds = var.dlq_retention_days * 86400
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  kms_master_key_id         = var.kms_key_arn
  tags                      = local.tags
}

resource "aws_lambda_event_source_mapping" "consumer" {
  for_each = local.consumers

  function_name     = aws_lambda_function.fn[each.key].arn
  event_source_arn  = each.value.enhanced_fan_out ? aws_kinesis_stream_consumer.efo[each.key].arn : aws_kinesis_stream.events.arn
  starting_position = each.value.starting_position

  batch_size                         = each.value.batch_size
  maximum_batching_window_in_seconds = each.value.batching_window_seconds
  parallelization_factor             = each.value.parallelization_factor

  # Partial failure: a handler names the first record it could not make
  # durable; Lambda retries from there instead of from the batch start.
  function_response_types = ["ReportBatchItemFailures"]

  # A failing batch is split in halves to isolate a poison record, retried a
  # bounded number of times and for a bounded age, then reported to the DLQ.
  bisect_batch_on_function_error = each.value.bisect_on_error
  maximum_retry_attempts         = each.value.maximum_retry_attempts
  maximum_record_age_in_seconds  = each.value.maximum_record_age_seconds

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.dlq.arn
    }
  }

  tags = local.tags

  # Lambda checks the role can read the stream and write the DLQ when the
  # mapping is created.
  depends_on = [aws_iam_role_policy.fn]
}
