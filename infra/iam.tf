# One execution role per function, each allowed exactly what its handler does:
# no wildcard actions, every resource an ARN of this deployment (tests/iam.tftest.hcl
# checks both). Built with jsonencode rather than aws_iam_policy_document so the
# plan-level tests can read the statements.

locals {
  bucket_arn = aws_s3_bucket.archive.arn

  # Statements every function gets.
  log_statements = {
    for k in keys(local.functions) : k => [{
      Sid      = "WriteOwnLogs"
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      Resource = ["${aws_cloudwatch_log_group.fn[k].arn}:*"]
    }]
  }

  kms_statements = var.kms_key_arn == null ? [] : [{
    Sid      = "UseDeploymentKey"
    Effect   = "Allow"
    Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
    Resource = [var.kms_key_arn]
    # Only through the services that encrypt this deployment's data.
    Condition = {
      StringEquals = {
        "kms:ViaService" = [for s in ["kinesis", "s3", "sqs", "secretsmanager"] : "${s}.${local.region}.amazonaws.com"]
      }
    }
  }]

  # Statements every consumer gets: read the stream (through its enhanced
  # fan-out consumer when it has one), report failed batches to the DLQ,
  # dead-letter bad records, and keep per-shard state in the leases table
  # under its own application name only (dynamodb:LeadingKeys).
  consumer_statements = {
    for k, v in local.consumers : k => concat(
      [
        {
          Sid    = "ReadStream"
          Effect = "Allow"
          Action = [
            "kinesis:DescribeStream",
            "kinesis:DescribeStreamSummary",
            "kinesis:GetRecords",
            "kinesis:GetShardIterator",
            "kinesis:ListShards",
          ]
          Resource = [aws_kinesis_stream.events.arn]
        },
      ],
      v.enhanced_fan_out ? [{
        Sid      = "ReadStreamFanOut"
        Effect   = "Allow"
        Action   = ["kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"]
        Resource = [aws_kinesis_stream_consumer.efo[k].arn]
      }] : [],
      [
        {
          Sid      = "SendFailedBatchesToDLQ"
          Effect   = "Allow"
          Action   = ["sqs:SendMessage"]
          Resource = [aws_sqs_queue.dlq.arn]
        },
        local.dead_letter_statement,
        local.own_leases_statements[k],
      ],
    )
  }

  # Shared by the consumer functions and the long-running consumers
  # (consume.tf): dead-letter bad records, and keep leases, checkpoints and
  # per-shard state under the application's own name (dynamodb:LeadingKeys).
  dead_letter_statement = {
    Sid      = "WriteDeadLetters"
    Effect   = "Allow"
    Action   = ["s3:PutObject"]
    Resource = ["${local.bucket_arn}/${local.errors_prefix}*"]
  }
  own_leases_statements = {
    for k in ["archive", "vectors", "metrics"] : k => {
      Sid    = "OwnShardState"
      Effect = "Allow"
      Action = [
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
      ]
      Resource  = [aws_dynamodb_table.this["leases"].arn]
      Condition = { "ForAllValues:StringEquals" = { "dynamodb:LeadingKeys" = [k] } }
    }
  }

  # What each handler writes.
  data_statements = {
    archive = [{
      Sid      = "WriteArchiveObjects"
      Effect   = "Allow"
      Action   = ["s3:PutObject", "s3:AbortMultipartUpload"]
      Resource = ["${local.bucket_arn}/${local.events_prefix}*"]
    }]
    vectors = [{
      Sid    = "UpdateUserVectors"
      Effect = "Allow"
      # UpdateItem with ADD and a condition on the shard's sequence guard;
      # GetItem reads the guard after a failed condition.
      Action   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
      Resource = [aws_dynamodb_table.this["vectors"].arn]
    }]
    metrics = [{
      Sid    = "WriteMetricPartials"
      Effect = "Allow"
      Action = [
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
      ]
      Resource = [aws_dynamodb_table.this["metrics"].arn]
    }]
    readapi = concat(
      [
        {
          Sid      = "ReadUserVectors"
          Effect   = "Allow"
          Action   = ["dynamodb:BatchGetItem", "dynamodb:GetItem"]
          Resource = [aws_dynamodb_table.this["vectors"].arn]
        },
        {
          Sid      = "ReadMetrics"
          Effect   = "Allow"
          Action   = ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query"]
          Resource = [aws_dynamodb_table.this["metrics"].arn]
        },
      ],
      local.read_api_keys_secret_arn == null ? [] : [{
        Sid      = "ReadApiKeys"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = [local.read_api_keys_secret_arn]
      }],
    )
    collector = [
      {
        Sid    = "PutEvents"
        Effect = "Allow"
        # ListShards and DescribeStreamSummary: the producer aggregates per
        # shard hash range.
        Action   = ["kinesis:DescribeStreamSummary", "kinesis:ListShards", "kinesis:PutRecord", "kinesis:PutRecords"]
        Resource = [aws_kinesis_stream.events.arn]
      },
      {
        Sid      = "ReadApiKeys"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = [local.api_keys_secret_arn]
      },
    ]
  }

  policy_statements = {
    for k in keys(local.functions) : k => concat(
      local.log_statements[k],
      lookup(local.consumer_statements, k, []),
      local.data_statements[k],
      local.kms_statements,
    )
  }
}

resource "aws_iam_role" "fn" {
  for_each = local.functions

  name        = "${var.name}-${each.key}-lambda"
  description = "Execution role of the ${var.name}-${each.key} Lambda function"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })

  tags = local.tags
}

resource "aws_iam_role_policy" "fn" {
  for_each = local.functions

  name = "${var.name}-${each.key}"
  role = aws_iam_role.fn[each.key].id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.policy_statements[each.key]
  })
}
