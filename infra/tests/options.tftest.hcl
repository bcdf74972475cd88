# The module's options: capacity mode, a key prefix, a customer key, fan-out,
# switching parts off, bringing your own secret or alarm topic.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  lambda_dist_dir = "tests/fixtures/dist"
}

run "additive_options_change_what_they_name" {
  variables {
    shard_count            = 4
    stream_retention_hours = 168
    archive_prefix         = "lake/" # a trailing slash is optional
    collector              = { api_keys_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shared/keys-XyZ123" }
    alarm_emails           = ["oncall@example.com"]
    alarm_webhook_urls     = ["https://hooks.example.com/a", "https://hooks.example.com/b"]
    bucket_versioning      = true
    archive                = { parallelization_factor = 4, batch_size = 500 }
  }

  # A shard count makes the stream provisioned
  assert {
    condition = (
      aws_kinesis_stream.events.stream_mode_details[0].stream_mode == "PROVISIONED" &&
      aws_kinesis_stream.events.shard_count == 4 &&
      aws_kinesis_stream.events.retention_period == 168
    )
    error_message = "shard_count must give a provisioned stream of that many shards"
  }

  # A prefix moves every key, permission and location under it
  assert {
    condition = alltrue([for k in ["archive", "vectors", "metrics"] :
      aws_lambda_function.fn[k].environment[0].variables["CLICKSTREAM_PREFIX"] == "lake/"
    ])
    error_message = "consumers must be told the prefix"
  }
  assert {
    condition = toset([for r in aws_s3_bucket_lifecycle_configuration.archive.rule : r.filter[0].prefix if r.id != "abort-incomplete-uploads"]) == toset([
      "lake/events/", "lake/errors/", "lake/athena-results/",
    ])
    error_message = "lifecycle rules must follow the prefix"
  }
  assert {
    condition = (
      contains(flatten([for s in jsondecode(aws_iam_role_policy.fn["archive"].policy).Statement : s.Resource]), "${aws_s3_bucket.archive.arn}/lake/events/*") &&
      contains(flatten([for s in jsondecode(aws_iam_role_policy.fn["vectors"].policy).Statement : s.Resource]), "${aws_s3_bucket.archive.arn}/lake/errors/*")
    )
    error_message = "object permissions must follow the prefix"
  }
  assert {
    condition = (
      aws_glue_catalog_table.events[0].storage_descriptor[0].location == "s3://clickstream-archive-123456789012/lake/events/" &&
      startswith(aws_glue_catalog_table.events[0].parameters["storage.location.template"], "s3://clickstream-archive-123456789012/lake/events/type=") &&
      aws_athena_workgroup.this[0].configuration[0].result_configuration[0].output_location == "s3://clickstream-archive-123456789012/lake/athena-results/"
    )
    error_message = "the Athena table and results must follow the prefix"
  }
  assert {
    condition     = output.archive_events_uri == "s3://clickstream-archive-123456789012/lake/events/" && strcontains(output.cli_env, "export CLICKSTREAM_PREFIX=lake/")
    error_message = "outputs must show the prefix"
  }

  # Subscribers and versioning
  assert {
    condition = (
      length(aws_sns_topic_subscription.email) == 1 && aws_sns_topic_subscription.email["oncall@example.com"].protocol == "email" &&
      length(aws_sns_topic_subscription.webhook) == 2 && aws_sns_topic_subscription.webhook[1].protocol == "https"
    )
    error_message = "one subscription per email and webhook"
  }
  assert {
    condition = (
      aws_s3_bucket_versioning.archive[0].versioning_configuration[0].status == "Enabled" &&
      try(one([for r in aws_s3_bucket_lifecycle_configuration.archive.rule :
        r.noncurrent_version_expiration[0].noncurrent_days == 30
      if r.id == "abort-incomplete-uploads"]), false)
    )
    error_message = "versioning must expire noncurrent versions after 30 days"
  }

  # Archive may read a shard in parallel
  assert {
    condition = (
      aws_lambda_event_source_mapping.consumer["archive"].parallelization_factor == 4 &&
      aws_lambda_event_source_mapping.consumer["archive"].batch_size == 500 &&
      # Unset fields keep their defaults.
      aws_lambda_event_source_mapping.consumer["archive"].maximum_batching_window_in_seconds == 60 &&
      aws_lambda_event_source_mapping.consumer["vectors"].parallelization_factor == 1
    )
    error_message = "archive settings must apply to the archive mapping only"
  }

  # An existing secret replaces the module's
  assert {
    condition = (
      length(aws_secretsmanager_secret.api_keys) == 0 &&
      aws_lambda_function.fn["collector"].environment[0].variables["CLICKSTREAM_API_KEYS_SECRET_ARN"] == var.collector.api_keys_secret_arn &&
      contains(flatten([for s in jsondecode(aws_iam_role_policy.fn["collector"].policy).Statement : s.Resource]), var.collector.api_keys_secret_arn)
    )
    error_message = "the collector must read, and only be allowed to read, the given secret"
  }
}

run "optional_parts_can_be_switched_off" {
  variables {
    enable_athena    = false
    enable_alarms    = false
    enable_dashboard = false
    collector        = { enabled = false }
    metrics          = { enabled = false }
    read_api         = { enabled = false }
  }

  assert {
    condition = (
      length(aws_glue_catalog_database.this) == 0 && length(aws_glue_catalog_table.events) == 0 && length(aws_athena_workgroup.this) == 0 &&
      length(aws_cloudwatch_metric_alarm.this) == 0 && length(aws_sns_topic.alarms) == 0 && length(aws_cloudwatch_dashboard.this) == 0 &&
      length(aws_apigatewayv2_api.collector) == 0 && length(aws_apigatewayv2_route.collector) == 0 && length(aws_secretsmanager_secret.api_keys) == 0 &&
      length(aws_apigatewayv2_api.read) == 0 && length(aws_secretsmanager_secret.read_api_keys) == 0
    )
    error_message = "disabled parts must not be created"
  }
  assert {
    condition = (
      toset(keys(aws_lambda_function.fn)) == toset(["archive", "vectors"]) &&
      toset(keys(aws_lambda_event_source_mapping.consumer)) == toset(["archive", "vectors"]) &&
      toset(keys(aws_iam_role.fn)) == toset(["archive", "vectors"])
    )
    error_message = "a disabled consumer or collector has no function, mapping or role"
  }
  assert {
    condition     = output.collector_url == null && output.read_api_url == null && output.glue_table == null && output.alarm_topic_arn == null && output.dashboard_url == null
    error_message = "outputs of disabled parts must be null"
  }
  assert {
    # The tables stay: the CLI's long-running consumers may still use them.
    condition     = length(aws_dynamodb_table.this) == 3
    error_message = "all tables exist whatever runs on Lambda"
  }
}

run "customer_key_fan_out_stored_keys_and_an_existing_topic" {
  variables {
    kms_key_arn         = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    vectors             = { enhanced_fan_out = true }
    collector_api_keys  = ["key-one-0123456789", "key-two-0123456789"]
    alarm_sns_topic_arn = "arn:aws:sns:eu-west-1:123456789012:ops"
  }

  # A customer key encrypts everything and is usable only through the services
  assert {
    condition = (
      aws_kinesis_stream.events.kms_key_id == var.kms_key_arn &&
      one(one(aws_s3_bucket_server_side_encryption_configuration.archive.rule).apply_server_side_encryption_by_default).kms_master_key_id == var.kms_key_arn &&
      one(aws_s3_bucket_server_side_encryption_configuration.archive.rule).bucket_key_enabled &&
      alltrue([for t in aws_dynamodb_table.this : t.server_side_encryption[0].enabled && t.server_side_encryption[0].kms_key_arn == var.kms_key_arn]) &&
      aws_sqs_queue.dlq.kms_master_key_id == var.kms_key_arn &&
      aws_secretsmanager_secret.api_keys[0].kms_key_id == var.kms_key_arn &&
      alltrue([for g in aws_cloudwatch_log_group.fn : g.kms_key_id == var.kms_key_arn]) &&
      aws_athena_workgroup.this[0].configuration[0].result_configuration[0].encryption_configuration[0].encryption_option == "SSE_KMS"
    )
    error_message = "the customer key must encrypt the stream, bucket, tables, DLQ, secret, logs and Athena results"
  }
  assert {
    condition = alltrue([for k, p in aws_iam_role_policy.fn :
      one([for s in jsondecode(p.policy).Statement : (
        s.Resource == [var.kms_key_arn] &&
        toset(s.Action) == toset(["kms:Decrypt", "kms:GenerateDataKey"]) &&
        contains(s.Condition.StringEquals["kms:ViaService"], "kinesis.eu-west-1.amazonaws.com")
      ) if anytrue([for a in s.Action : startswith(a, "kms:")])])
    ])
    error_message = "every role gets exactly one KMS statement, on that key, through the services"
  }

  # Enhanced fan-out reads through a registered consumer
  assert {
    condition = (
      toset(keys(aws_kinesis_stream_consumer.efo)) == toset(["vectors"]) &&
      aws_kinesis_stream_consumer.efo["vectors"].name == "clickstream-vectors" &&
      aws_kinesis_stream_consumer.efo["vectors"].stream_arn == aws_kinesis_stream.events.arn
    )
    error_message = "a registered consumer for vectors only"
  }
  assert {
    condition = (
      aws_lambda_event_source_mapping.consumer["vectors"].event_source_arn == aws_kinesis_stream_consumer.efo["vectors"].arn &&
      aws_lambda_event_source_mapping.consumer["archive"].event_source_arn == aws_kinesis_stream.events.arn
    )
    error_message = "the vectors mapping must read through its consumer, the others from the stream"
  }
  assert {
    condition = alltrue([for k, p in aws_iam_role_policy.fn :
      contains(flatten([for s in jsondecode(p.policy).Statement : s.Resource]), aws_kinesis_stream_consumer.efo["vectors"].arn) == (k == "vectors")
    ])
    error_message = "only the vectors role may subscribe through the consumer"
  }

  # Alarms can go to an existing topic
  assert {
    condition = (
      length(aws_sns_topic.alarms) == 0 &&
      alltrue([for a in aws_cloudwatch_metric_alarm.this : a.alarm_actions == toset([var.alarm_sns_topic_arn])])
    )
    error_message = "alarms must notify the given topic and no topic be created"
  }

  # Keys given as a variable are stored in the secret
  assert {
    condition     = length(aws_secretsmanager_secret_version.api_keys) == 1 && jsondecode(aws_secretsmanager_secret_version.api_keys[0].secret_string) == ["key-one-0123456789", "key-two-0123456789"]
    error_message = "the keys must be stored as a JSON array"
  }
}

run "read_api_with_iam_authorization" {
  variables {
    read_api = { auth = "iam" }
  }

  assert {
    condition     = aws_apigatewayv2_route.read[0].authorization_type == "AWS_IAM" && length(aws_secretsmanager_secret.read_api_keys) == 0
    error_message = "iam mode: API Gateway checks SigV4 on every route and no key secret is made"
  }
  assert {
    condition = (
      aws_lambda_function.fn["readapi"].environment[0].variables["CLICKSTREAM_READ_API_AUTH"] == "iam" &&
      !contains(keys(aws_lambda_function.fn["readapi"].environment[0].variables), "CLICKSTREAM_API_KEYS_SECRET_ARN")
    )
    error_message = "iam mode: the function checks no keys"
  }
  assert {
    condition     = jsondecode(aws_iam_policy.read_api_invoke[0].policy).Statement[0].Action == ["execute-api:Invoke"] && output.read_api_invoke_policy_arn == aws_iam_policy.read_api_invoke[0].arn && output.read_api_auth == "iam"
    error_message = "iam mode: an invoke policy for callers, in the outputs"
  }
}
