# A default deployment, applied against the mock aws provider (no AWS, no
# network): names, keys, the event source mapping contract, the archive
# layout Athena reads, alarms and the collector API.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  lambda_dist_dir = "tests/fixtures/dist"
}

run "default_deployment_matches_the_design" {
  # Names follow the design defaults
  assert {
    condition     = aws_kinesis_stream.events.name == "clickstream-events"
    error_message = "stream name: ${aws_kinesis_stream.events.name}"
  }
  assert {
    condition = (
      aws_dynamodb_table.this["leases"].name == "clickstream-leases" &&
      aws_dynamodb_table.this["vectors"].name == "clickstream-user-vectors" &&
      aws_dynamodb_table.this["metrics"].name == "clickstream-metrics"
    )
    error_message = "table names differ from DESIGN.md §5"
  }
  assert {
    condition     = aws_s3_bucket.archive.bucket == "clickstream-archive-123456789012"
    error_message = "bucket name: ${aws_s3_bucket.archive.bucket}"
  }
  assert {
    condition     = toset(keys(aws_lambda_function.fn)) == toset(["archive", "vectors", "metrics", "collector", "readapi"])
    error_message = "functions: ${join(",", keys(aws_lambda_function.fn))}"
  }
  assert {
    condition     = alltrue([for k, f in aws_lambda_function.fn : f.function_name == "clickstream-${k}"])
    error_message = "function names must be clickstream-<name>"
  }
  assert {
    condition     = aws_sqs_queue.dlq.name == "clickstream-consumer-dlq"
    error_message = "DLQ name: ${aws_sqs_queue.dlq.name}"
  }

  # The stream is on-demand, encrypted, and keeps a day
  assert {
    condition     = aws_kinesis_stream.events.stream_mode_details[0].stream_mode == "ON_DEMAND"
    error_message = "the stream must be on-demand by default"
  }
  assert {
    condition     = aws_kinesis_stream.events.encryption_type == "KMS" && aws_kinesis_stream.events.kms_key_id == "alias/aws/kinesis"
    error_message = "the stream must be encrypted with the AWS managed key by default"
  }
  assert {
    condition     = toset(aws_kinesis_stream.events.shard_level_metrics) == toset(["IncomingBytes", "IteratorAgeMilliseconds", "WriteProvisionedThroughputExceeded"])
    error_message = "per-shard metrics: incoming bytes, iterator age, write throttling"
  }
  assert {
    condition     = aws_kinesis_stream.events.retention_period == 24
    error_message = "retention: ${aws_kinesis_stream.events.retention_period}"
  }
  assert {
    condition     = length(aws_kinesis_stream_consumer.efo) == 0
    error_message = "enhanced fan-out must be off by default"
  }

  # Tables have the key schemas of internal/setup
  assert {
    condition = (
      aws_dynamodb_table.this["leases"].hash_key == "app" &&
      aws_dynamodb_table.this["leases"].range_key == "shard_id" &&
      aws_dynamodb_table.this["leases"].attribute == toset([{ name = "app", type = "S" }, { name = "shard_id", type = "S" }])
    )
    error_message = "leases table must be keyed app (S) + shard_id (S)"
  }
  assert {
    condition = (
      aws_dynamodb_table.this["vectors"].hash_key == "user_id" &&
      aws_dynamodb_table.this["vectors"].range_key == null &&
      aws_dynamodb_table.this["vectors"].attribute == toset([{ name = "user_id", type = "S" }])
    )
    error_message = "vectors table must be keyed user_id (S) only"
  }
  assert {
    condition = (
      aws_dynamodb_table.this["metrics"].hash_key == "pk" &&
      aws_dynamodb_table.this["metrics"].range_key == "sk" &&
      aws_dynamodb_table.this["metrics"].attribute == toset([{ name = "pk", type = "S" }, { name = "sk", type = "S" }])
    )
    error_message = "metrics table must be keyed pk (S) + sk (S)"
  }
  assert {
    condition = (
      length(aws_dynamodb_table.this["metrics"].ttl) == 1 &&
      aws_dynamodb_table.this["metrics"].ttl[0].attribute_name == "expires_at" &&
      aws_dynamodb_table.this["metrics"].ttl[0].enabled
    )
    error_message = "metric rows must expire through TTL on expires_at"
  }
  assert {
    condition = alltrue([for k in ["leases", "vectors"] :
      alltrue([for t in aws_dynamodb_table.this[k].ttl : !t.enabled])
    ])
    error_message = "only the metrics table has TTL"
  }
  assert {
    condition = alltrue([for t in aws_dynamodb_table.this :
      t.billing_mode == "PAY_PER_REQUEST" && t.point_in_time_recovery[0].enabled && t.deletion_protection_enabled
    ])
    error_message = "every table must be on-demand, with point-in-time recovery and deletion protection"
  }

  # The bucket is private, encrypted and TLS-only
  assert {
    condition = (
      aws_s3_bucket_public_access_block.archive.block_public_acls &&
      aws_s3_bucket_public_access_block.archive.block_public_policy &&
      aws_s3_bucket_public_access_block.archive.ignore_public_acls &&
      aws_s3_bucket_public_access_block.archive.restrict_public_buckets
    )
    error_message = "every public access block setting must be on"
  }
  assert {
    condition     = one(aws_s3_bucket_ownership_controls.archive.rule).object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs must be disabled"
  }
  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.archive.rule).apply_server_side_encryption_by_default).sse_algorithm == "AES256"
    error_message = "default encryption must be SSE-S3 without a customer key"
  }
  assert {
    condition = anytrue([for s in jsondecode(aws_s3_bucket_policy.archive.policy).Statement :
      s.Effect == "Deny" && s.Principal == "*" && s.Action == "s3:*" &&
      s.Condition == { Bool = { "aws:SecureTransport" = "false" } } &&
      toset(s.Resource) == toset([aws_s3_bucket.archive.arn, "${aws_s3_bucket.archive.arn}/*"])
    ])
    error_message = "the bucket policy must deny every request without TLS"
  }
  assert {
    condition     = !aws_s3_bucket.archive.force_destroy && length(aws_s3_bucket_versioning.archive) == 0
    error_message = "force_destroy and versioning are opt-in"
  }

  # Lifecycle expires errors and never tiers small files
  assert {
    condition     = aws_s3_bucket_lifecycle_configuration.archive.transition_default_minimum_object_size == "all_storage_classes_128K"
    error_message = "objects under 128 KiB must never be transitioned"
  }
  assert {
    condition = try(one([for r in aws_s3_bucket_lifecycle_configuration.archive.rule : (
      r.status == "Enabled" && r.filter[0].prefix == "errors/" && r.expiration[0].days == 30
    ) if r.id == "errors-expiration"]), false)
    error_message = "bad records under errors/ must expire after 30 days"
  }
  assert {
    condition = try(one([for r in aws_s3_bucket_lifecycle_configuration.archive.rule : (
      r.filter[0].prefix == "events/" &&
      toset([for t in r.transition : "${t.storage_class}@${t.days}"]) == toset(["STANDARD_IA@30", "GLACIER_IR@90"])
    ) if r.id == "archive-tiering"]), false)
    error_message = "events/ must move to Standard-IA after 30 days and Glacier IR after 90"
  }
  assert {
    condition = try(one([for r in aws_s3_bucket_lifecycle_configuration.archive.rule :
      r.abort_incomplete_multipart_upload[0].days_after_initiation == 1
    if r.id == "abort-incomplete-uploads"]), false)
    error_message = "incomplete multipart uploads must be cleaned up"
  }
  assert {
    condition = try(one([for r in aws_s3_bucket_lifecycle_configuration.archive.rule :
      r.filter[0].prefix == "athena-results/" && r.expiration[0].days == 7
    if r.id == "athena-results-expiration"]), false)
    error_message = "Athena results must expire after 7 days"
  }
  assert {
    condition     = !contains([for r in aws_s3_bucket_lifecycle_configuration.archive.rule : r.id], "archive-expiration")
    error_message = "archived events must not expire by default"
  }

  # Functions run Go on arm64 and are told their resources
  assert {
    condition = alltrue([for k, f in aws_lambda_function.fn :
      f.runtime == "provided.al2023" && f.handler == "bootstrap" && f.architectures == tolist(["arm64"])
    ])
    error_message = "functions must be provided.al2023, arm64, handler bootstrap"
  }
  assert {
    condition = alltrue([for k, f in aws_lambda_function.fn :
      f.source_code_hash == filebase64sha256("tests/fixtures/dist/lambda-${k}.zip") && f.filename == "tests/fixtures/dist/lambda-${k}.zip"
    ])
    error_message = "each function must deploy dist/lambda-<name>.zip, versioned by its SHA-256"
  }
  assert {
    condition = (
      aws_lambda_function.fn["vectors"].environment[0].variables["CLICKSTREAM_VECTORS_TABLE"] == aws_dynamodb_table.this["vectors"].name &&
      aws_lambda_function.fn["metrics"].environment[0].variables["CLICKSTREAM_METRICS_TABLE"] == aws_dynamodb_table.this["metrics"].name &&
      aws_lambda_function.fn["archive"].environment[0].variables["CLICKSTREAM_BUCKET"] == aws_s3_bucket.archive.bucket &&
      aws_lambda_function.fn["collector"].environment[0].variables["CLICKSTREAM_STREAM"] == aws_kinesis_stream.events.name &&
      aws_lambda_function.fn["collector"].environment[0].variables["CLICKSTREAM_API_KEYS_SECRET_ARN"] == aws_secretsmanager_secret.api_keys[0].arn
    )
    error_message = "function environments must name the deployment's resources"
  }
  assert {
    condition = alltrue([for k in ["archive", "vectors", "metrics"] :
      aws_lambda_function.fn[k].environment[0].variables["CLICKSTREAM_LEASES_TABLE"] == "clickstream-leases" &&
      aws_lambda_function.fn[k].environment[0].variables["CLICKSTREAM_STREAM"] == "clickstream-events" &&
      !contains(keys(aws_lambda_function.fn[k].environment[0].variables), "CLICKSTREAM_PREFIX")
    ])
    error_message = "consumers must be told the stream and leases table (and no prefix by default)"
  }
  assert {
    condition = alltrue([for k, f in aws_lambda_function.fn :
      aws_cloudwatch_log_group.fn[k].name == "/aws/lambda/${f.function_name}" && aws_cloudwatch_log_group.fn[k].retention_in_days == 30
    ])
    error_message = "each function's log group must exist with 30 days retention"
  }
  assert {
    condition     = aws_lambda_function.fn["archive"].memory_size == 1024 && aws_lambda_function.fn["collector"].timeout == 10
    error_message = "per-function memory and timeout defaults"
  }

  # Event source mappings report partial failures and never block a shard
  assert {
    condition     = toset(keys(aws_lambda_event_source_mapping.consumer)) == toset(["archive", "vectors", "metrics"])
    error_message = "one mapping per consumer, none for the collector"
  }
  assert {
    condition = alltrue([for k, m in aws_lambda_event_source_mapping.consumer :
      m.function_response_types == toset(["ReportBatchItemFailures"])
    ])
    error_message = "every mapping must use ReportBatchItemFailures"
  }
  assert {
    condition = alltrue([for k, m in aws_lambda_event_source_mapping.consumer :
      m.destination_config[0].on_failure[0].destination_arn == aws_sqs_queue.dlq.arn
    ])
    error_message = "every mapping must send given-up batches to the DLQ"
  }
  assert {
    condition = alltrue([for k, m in aws_lambda_event_source_mapping.consumer :
      m.bisect_batch_on_function_error && m.maximum_retry_attempts == 10 && m.maximum_record_age_in_seconds == 21600
    ])
    error_message = "mappings must bisect failing batches and bound retries (10) and record age (6 h)"
  }
  assert {
    condition = alltrue([for k, m in aws_lambda_event_source_mapping.consumer :
      m.parallelization_factor == 1 && m.starting_position == "TRIM_HORIZON" &&
      m.event_source_arn == aws_kinesis_stream.events.arn && m.function_name == aws_lambda_function.fn[k].arn
    ])
    error_message = "mappings must read the stream in shard order from the trim horizon into their own function"
  }
  assert {
    condition = (
      aws_lambda_event_source_mapping.consumer["archive"].batch_size == 10000 &&
      aws_lambda_event_source_mapping.consumer["archive"].maximum_batching_window_in_seconds == 60 &&
      aws_lambda_event_source_mapping.consumer["vectors"].batch_size == 1000 &&
      aws_lambda_event_source_mapping.consumer["vectors"].maximum_batching_window_in_seconds == 0 &&
      aws_lambda_event_source_mapping.consumer["metrics"].batch_size == 5000 &&
      aws_lambda_event_source_mapping.consumer["metrics"].maximum_batching_window_in_seconds == 10
    )
    error_message = "batch sizes and windows per consumer"
  }
  assert {
    condition     = aws_sqs_queue.dlq.message_retention_seconds == 1209600 && aws_sqs_queue.dlq.sqs_managed_sse_enabled
    error_message = "the DLQ must keep notices 14 days, encrypted"
  }

  # The Glue table projects type, dt and hour over the archive layout
  assert {
    condition = (
      aws_glue_catalog_table.events[0].parameters["projection.enabled"] == "true" &&
      aws_glue_catalog_table.events[0].parameters["projection.type.type"] == "enum" &&
      aws_glue_catalog_table.events[0].parameters["projection.type.values"] == "click,impression,access" &&
      aws_glue_catalog_table.events[0].parameters["projection.dt.type"] == "date" &&
      aws_glue_catalog_table.events[0].parameters["projection.dt.format"] == "yyyy-MM-dd" &&
      aws_glue_catalog_table.events[0].parameters["projection.dt.range"] == "2025-01-01,NOW" &&
      aws_glue_catalog_table.events[0].parameters["projection.hour.type"] == "integer" &&
      aws_glue_catalog_table.events[0].parameters["projection.hour.range"] == "0,23" &&
      aws_glue_catalog_table.events[0].parameters["projection.hour.digits"] == "2"
    )
    error_message = "partition projection must cover type (enum), dt (date) and hour (two digits)"
  }
  assert {
    condition     = aws_glue_catalog_table.events[0].parameters["storage.location.template"] == "s3://clickstream-archive-123456789012/events/type=$${type}/dt=$${dt}/hour=$${hour}/"
    error_message = "location template: ${aws_glue_catalog_table.events[0].parameters["storage.location.template"]}"
  }
  assert {
    condition     = [for p in aws_glue_catalog_table.events[0].partition_keys : p.name] == ["type", "dt", "hour"]
    error_message = "partition keys must be type, dt, hour in the order of the S3 layout"
  }
  assert {
    condition = (
      [for c in aws_glue_catalog_table.events[0].storage_descriptor[0].columns : c.name] == [for c in jsondecode(file("archive-columns.json")) : c.name] &&
      !contains([for c in aws_glue_catalog_table.events[0].storage_descriptor[0].columns : c.name], "type")
    )
    error_message = "columns must be archive-columns.json's, without the partition column"
  }
  assert {
    condition = alltrue([for want in ["ts:timestamp", "arrival_ts:timestamp", "features:map<string,double>", "attrs:map<string,string>", "shard_id:string", "sequence_number:string", "sub_sequence_number:bigint"] :
      contains([for c in aws_glue_catalog_table.events[0].storage_descriptor[0].columns : "${c.name}:${c.type}"], want)
    ])
    error_message = "DESIGN.md §4 columns and types"
  }
  assert {
    condition     = aws_glue_catalog_table.events[0].storage_descriptor[0].ser_de_info[0].serialization_library == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    error_message = "the table must read Parquet"
  }
  assert {
    condition = (
      aws_athena_workgroup.this[0].configuration[0].result_configuration[0].output_location == "s3://clickstream-archive-123456789012/athena-results/" &&
      aws_athena_workgroup.this[0].configuration[0].enforce_workgroup_configuration
    )
    error_message = "Athena results must go to athena-results/ in the bucket"
  }

  # Alarms watch iterator age, errors, throttles and the DLQ
  assert {
    condition = alltrue([for k, v in { archive = 900, vectors = 60, metrics = 300 } :
      aws_cloudwatch_metric_alarm.this["${k}-iterator-age"].metric_name == "IteratorAge" &&
      aws_cloudwatch_metric_alarm.this["${k}-iterator-age"].namespace == "AWS/Lambda" &&
      aws_cloudwatch_metric_alarm.this["${k}-iterator-age"].statistic == "Maximum" &&
      aws_cloudwatch_metric_alarm.this["${k}-iterator-age"].dimensions == tomap({ FunctionName = aws_lambda_function.fn[k].function_name }) &&
      aws_cloudwatch_metric_alarm.this["${k}-iterator-age"].threshold == v * 1000
    ])
    error_message = "one iterator-age alarm per consumer mapping, in milliseconds"
  }
  assert {
    condition = alltrue(flatten([for k in keys(aws_lambda_function.fn) : [
      aws_cloudwatch_metric_alarm.this["${k}-errors"].metric_name == "Errors",
      aws_cloudwatch_metric_alarm.this["${k}-throttles"].metric_name == "Throttles",
    ]]))
    error_message = "errors and throttles alarms for every function"
  }
  assert {
    condition = alltrue([for k in ["archive", "vectors", "metrics"] :
      aws_cloudwatch_metric_alarm.this["${k}-batch-failures"].namespace == "Clickstream" &&
      aws_cloudwatch_metric_alarm.this["${k}-batch-failures"].metric_name == "clickstream_consumer_batch_failures_total" &&
      aws_cloudwatch_metric_alarm.this["${k}-batch-failures"].dimensions == tomap({ Function = aws_lambda_function.fn[k].function_name })
    ])
    error_message = "an alarm per consumer on its EMF failed-batch count, dimension Function as the functions emit it"
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.this["dlq-depth"].namespace == "AWS/SQS" &&
      aws_cloudwatch_metric_alarm.this["dlq-depth"].dimensions == tomap({ QueueName = aws_sqs_queue.dlq.name }) &&
      aws_cloudwatch_metric_alarm.this["dlq-depth"].threshold == 0
    )
    error_message = "any message in the DLQ must alarm"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["collector-5xx"].dimensions == tomap({ ApiId = aws_apigatewayv2_api.collector[0].id, Stage = "$default" })
    error_message = "collector 5xx alarm must watch the API's default stage"
  }
  assert {
    condition = alltrue([for a in aws_cloudwatch_metric_alarm.this :
      a.alarm_actions == toset([aws_sns_topic.alarms[0].arn]) && a.ok_actions == toset([aws_sns_topic.alarms[0].arn]) && a.treat_missing_data == "notBreaching"
    ])
    error_message = "every alarm must notify the SNS topic on alarm and on recovery"
  }
  assert {
    condition     = alltrue([for f in aws_lambda_function.fn : strcontains(aws_cloudwatch_dashboard.this[0].dashboard_body, "\"${f.function_name}\"")])
    error_message = "the dashboard must chart every function"
  }

  # The collector is an HTTP API that alone may invoke it
  assert {
    condition = (
      aws_apigatewayv2_api.collector[0].protocol_type == "HTTP" &&
      aws_apigatewayv2_integration.collector[0].integration_type == "AWS_PROXY" &&
      aws_apigatewayv2_integration.collector[0].payload_format_version == "2.0" &&
      aws_apigatewayv2_integration.collector[0].integration_uri == aws_lambda_function.fn["collector"].invoke_arn
    )
    error_message = "the collector must be a Lambda proxy integration with payload format 2.0"
  }
  assert {
    condition     = toset([for r in aws_apigatewayv2_route.collector : r.route_key]) == toset(["POST /v1/events", "OPTIONS /v1/events", "GET /healthz"])
    error_message = "routes: POST and OPTIONS /v1/events, GET /healthz (never /metrics)"
  }
  assert {
    condition = (
      aws_apigatewayv2_stage.collector[0].name == "$default" && aws_apigatewayv2_stage.collector[0].auto_deploy &&
      aws_apigatewayv2_stage.collector[0].default_route_settings[0].throttling_rate_limit == 1000 &&
      aws_apigatewayv2_stage.collector[0].access_log_settings[0].destination_arn == aws_cloudwatch_log_group.collector_access[0].arn
    )
    error_message = "the stage must throttle and log access"
  }
  assert {
    condition = (
      aws_lambda_permission.collector_api[0].principal == "apigateway.amazonaws.com" &&
      aws_lambda_permission.collector_api[0].source_arn == "${aws_apigatewayv2_api.collector[0].execution_arn}/*/*"
    )
    error_message = "only this API may invoke the collector"
  }
  assert {
    condition     = length(aws_secretsmanager_secret.api_keys) == 1 && length(aws_secretsmanager_secret_version.api_keys) == 0
    error_message = "the key secret is created empty, keeping keys out of state"
  }
  assert {
    condition     = output.collector_url == "https://mockapi.execute-api.eu-west-1.amazonaws.com/v1/events"
    error_message = "collector_url: ${output.collector_url}"
  }

  # Every taggable resource carries the deployment tags
  assert {
    condition = alltrue([for t in concat(
      [
        aws_kinesis_stream.events.tags, aws_s3_bucket.archive.tags, aws_sqs_queue.dlq.tags, aws_sns_topic.alarms[0].tags,
        aws_glue_catalog_database.this[0].tags, aws_athena_workgroup.this[0].tags, aws_apigatewayv2_api.collector[0].tags,
        aws_apigatewayv2_stage.collector[0].tags, aws_secretsmanager_secret.api_keys[0].tags, aws_cloudwatch_log_group.collector_access[0].tags,
      ],
      [for r in aws_iam_role.fn : r.tags], [for f in aws_lambda_function.fn : f.tags], [for t in aws_dynamodb_table.this : t.tags],
      [for g in aws_cloudwatch_log_group.fn : g.tags], [for m in aws_lambda_event_source_mapping.consumer : m.tags],
      [for a in aws_cloudwatch_metric_alarm.this : a.tags],
      ) :
      t["Project"] == "clickstream" && t["Environment"] == "prod" && t["Deployment"] == "clickstream" && t["ManagedBy"] == "terraform"
    ])
    error_message = "every taggable resource must carry Project, Environment, Deployment and ManagedBy"
  }
}
