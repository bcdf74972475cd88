output "stream_name" {
  description = "Kinesis stream name (clickstream --stream)."
  value       = aws_kinesis_stream.events.name
}

output "stream_arn" {
  description = "Kinesis stream ARN."
  value       = aws_kinesis_stream.events.arn
}

output "bucket" {
  description = "Archive bucket name (clickstream --bucket)."
  value       = aws_s3_bucket.archive.bucket
}

output "bucket_arn" {
  description = "Archive bucket ARN."
  value       = aws_s3_bucket.archive.arn
}

output "archive_events_uri" {
  description = "Where the Parquet archive lives: s3://BUCKET/PREFIX/events/."
  value       = "s3://${aws_s3_bucket.archive.bucket}/${local.events_prefix}"
}

output "archive_errors_uri" {
  description = "Where bad records are dead-lettered: s3://BUCKET/PREFIX/errors/."
  value       = "s3://${aws_s3_bucket.archive.bucket}/${local.errors_prefix}"
}

output "tables" {
  description = "DynamoDB table names: leases, vectors, metrics."
  value       = { for k, t in aws_dynamodb_table.this : k => t.name }
}

output "table_arns" {
  description = "DynamoDB table ARNs: leases, vectors, metrics."
  value       = { for k, t in aws_dynamodb_table.this : k => t.arn }
}

output "functions" {
  description = "Lambda function names, keyed archive, vectors, metrics, collector (enabled ones only)."
  value       = { for k, f in aws_lambda_function.fn : k => f.function_name }
}

output "event_source_mappings" {
  description = "Event source mapping UUIDs per consumer."
  value       = { for k, m in aws_lambda_event_source_mapping.consumer : k => m.uuid }
}

output "dlq_url" {
  description = "URL of the SQS queue that receives the shard and sequence range of every batch the consumers gave up on."
  value       = aws_sqs_queue.dlq.url
}

output "dlq_arn" {
  description = "ARN of the consumers' dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "collector_endpoint" {
  description = "Base URL of the collector API (null when the collector is disabled)."
  value       = local.collector ? aws_apigatewayv2_stage.collector[0].invoke_url : null
}

output "collector_url" {
  description = "Where apps POST events: <collector_endpoint>/v1/events (null when the collector is disabled)."
  value       = local.collector ? "${trimsuffix(aws_apigatewayv2_stage.collector[0].invoke_url, "/")}/v1/events" : null
}

output "collector_health_url" {
  description = "The collector's GET /healthz (null when the collector is disabled)."
  value       = local.collector ? "${trimsuffix(aws_apigatewayv2_stage.collector[0].invoke_url, "/")}/healthz" : null
}

output "collector_api_keys_secret_arn" {
  description = "Secrets Manager secret holding the collector's API keys as a JSON array (null when the collector is disabled)."
  value       = local.api_keys_secret_arn
}

output "glue_database" {
  description = "Glue database of the archive table (null without enable_athena)."
  value       = var.enable_athena ? aws_glue_catalog_database.this[0].name : null
}

output "glue_table" {
  description = "Athena table over the archive, as database.table (null without enable_athena)."
  value       = var.enable_athena ? "${aws_glue_catalog_database.this[0].name}.${aws_glue_catalog_table.events[0].name}" : null
}

output "athena_workgroup" {
  description = "Athena workgroup to run archive queries in (null without enable_athena)."
  value       = var.enable_athena ? aws_athena_workgroup.this[0].name : null
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify (null without enable_alarms)."
  value       = local.alarm_topic_arn
}

output "dashboard_url" {
  description = "CloudWatch dashboard in the AWS console (null without enable_dashboard)."
  value       = var.enable_dashboard ? "https://${local.region}.console.aws.amazon.com/cloudwatch/home?region=${local.region}#dashboards:name=${aws_cloudwatch_dashboard.this[0].dashboard_name}" : null
}

output "cli_env" {
  description = "Shell lines that point the clickstream CLI (vectors get, metrics query, consume, api) at this deployment."
  value = join("\n", concat(
    [
      "export AWS_REGION=${local.region}",
      "export CLICKSTREAM_STREAM=${aws_kinesis_stream.events.name}",
      "export CLICKSTREAM_BUCKET=${aws_s3_bucket.archive.bucket}",
      "export CLICKSTREAM_VECTORS_TABLE=${aws_dynamodb_table.this["vectors"].name}",
      "export CLICKSTREAM_METRICS_TABLE=${aws_dynamodb_table.this["metrics"].name}",
      "export CLICKSTREAM_LEASES_TABLE=${aws_dynamodb_table.this["leases"].name}",
    ],
    local.prefix == "" ? [] : ["export CLICKSTREAM_PREFIX=${local.prefix}"],
  ))
}

output "consume_policy_arns" {
  description = "IAM policy per long-running application (var.consume): attach it to the role `clickstream consume NAME` runs as."
  value       = { for k, p in aws_iam_policy.consume : k => p.arn }
}

output "consume_stream_consumers" {
  description = "Enhanced fan-out stream consumers of the long-running applications (var.consume.read_mode = \"efo\"): `clickstream consume --read-mode efo` uses them."
  value       = { for k, c in aws_kinesis_stream_consumer.consume : k => c.arn }
}

output "vectors_reader_policy_arn" {
  description = "IAM policy to attach to a service that reads user vectors straight from DynamoDB (vectors.NewReader: GetItem, BatchGetItem on the vectors table only)."
  value       = aws_iam_policy.vectors_reader.arn
}

output "read_api_url" {
  description = "Base URL of the read API (null when read_api.enabled is false): GET <url>/v1/users/{id}/vector?k=20, GET <url>/v1/metrics/{metric}, the dashboard at <url>/#key=KEY."
  value       = local.read_api ? aws_apigatewayv2_stage.read[0].invoke_url : null
}

output "read_api_auth" {
  description = "How callers authenticate to the read API: \"keys\" (Authorization: Bearer KEY, keys in read_api_keys_secret_arn) or \"iam\" (SigV4-signed requests, service execute-api, with read_api_invoke_policy_arn attached)."
  value       = local.read_api ? var.read_api.auth : null
}

output "read_api_keys_secret_arn" {
  description = "Secrets Manager secret holding the read API's keys as a JSON array (keys mode)."
  value       = local.read_api_keys_secret_arn
}

output "read_api_invoke_policy_arn" {
  description = "IAM policy a caller's role needs to call the read API in iam mode (execute-api:Invoke, GET only)."
  value       = local.read_api_iam ? aws_iam_policy.read_api_invoke[0].arn : null
}
