# Least privilege, checked on the policies themselves: no wildcard actions, no
# wildcard resources beyond object keys under a prefix and log streams of the
# function's own log group, and each role reaching only what its handler uses.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  lambda_dist_dir = "tests/fixtures/dist"
}

run "default_policies_are_least_privilege" {
  # No policy has wildcard actions or resources
  assert {
    condition = alltrue(flatten([for k, p in aws_iam_role_policy.fn : [
      for s in jsondecode(p.policy).Statement : [for a in s.Action : !strcontains(a, "*")]
    ]]))
    error_message = "no action may contain '*'"
  }
  assert {
    condition = alltrue(flatten([for k, p in aws_iam_role_policy.fn : [
      for s in jsondecode(p.policy).Statement : [for r in s.Resource :
        !strcontains(r, "*") ||
        r == "${aws_cloudwatch_log_group.fn[k].arn}:*" ||
        contains(["${aws_s3_bucket.archive.arn}/events/*", "${aws_s3_bucket.archive.arn}/errors/*"], r)
      ]
    ]]))
    error_message = "'*' may appear in a resource only for object keys under events/ or errors/ and the function's own log streams"
  }
  assert {
    condition = alltrue(flatten([for k, p in aws_iam_role_policy.fn : [
      for s in jsondecode(p.policy).Statement : s.Effect == "Allow" && length(s.Resource) > 0 && length(s.Action) > 0
    ]]))
    error_message = "statements must be explicit Allows with actions and resources"
  }
  assert {
    condition = alltrue([for k, r in aws_iam_role.fn :
      jsondecode(r.assume_role_policy).Statement[0].Principal == { Service = "lambda.amazonaws.com" } &&
      aws_lambda_function.fn[k].role == r.arn && aws_iam_role_policy.fn[k].role == r.id
    ])
    error_message = "each function has its own role, assumable by Lambda only"
  }

  # Each function reaches only its own resources
  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.fn["archive"].policy).Statement : s.Resource])) == toset([
      "${aws_cloudwatch_log_group.fn["archive"].arn}:*",
      aws_kinesis_stream.events.arn,
      aws_sqs_queue.dlq.arn,
      aws_dynamodb_table.this["leases"].arn,
      "${aws_s3_bucket.archive.arn}/events/*",
      "${aws_s3_bucket.archive.arn}/errors/*",
    ])
    error_message = "archive: stream, DLQ, leases, events/ and errors/ only"
  }
  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.fn["vectors"].policy).Statement : s.Resource])) == toset([
      "${aws_cloudwatch_log_group.fn["vectors"].arn}:*",
      aws_kinesis_stream.events.arn,
      aws_sqs_queue.dlq.arn,
      aws_dynamodb_table.this["leases"].arn,
      aws_dynamodb_table.this["vectors"].arn,
      "${aws_s3_bucket.archive.arn}/errors/*",
    ])
    error_message = "vectors: stream, DLQ, leases, the vectors table and errors/ only"
  }
  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.fn["metrics"].policy).Statement : s.Resource])) == toset([
      "${aws_cloudwatch_log_group.fn["metrics"].arn}:*",
      aws_kinesis_stream.events.arn,
      aws_sqs_queue.dlq.arn,
      aws_dynamodb_table.this["leases"].arn,
      aws_dynamodb_table.this["metrics"].arn,
      "${aws_s3_bucket.archive.arn}/errors/*",
    ])
    error_message = "metrics: stream, DLQ, leases, the metrics table and errors/ only"
  }
  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.fn["collector"].policy).Statement : s.Resource])) == toset([
      "${aws_cloudwatch_log_group.fn["collector"].arn}:*",
      aws_kinesis_stream.events.arn,
      aws_secretsmanager_secret.api_keys[0].arn,
    ])
    error_message = "collector: the stream and its key secret only"
  }

  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.fn["readapi"].policy).Statement : s.Resource])) == toset([
      "${aws_cloudwatch_log_group.fn["readapi"].arn}:*",
      aws_dynamodb_table.this["vectors"].arn,
      aws_dynamodb_table.this["metrics"].arn,
      aws_secretsmanager_secret.read_api_keys[0].arn,
    ]) && !contains(flatten([for s in jsondecode(aws_iam_role_policy.fn["readapi"].policy).Statement : s.Action]), "dynamodb:UpdateItem")
    error_message = "read API: reads the vectors and metrics tables and its key secret, writes nothing"
  }

  # Only the collector writes and only consumers read the stream
  assert {
    condition = alltrue([for k, p in aws_iam_role_policy.fn :
      contains(flatten([for s in jsondecode(p.policy).Statement : s.Action]), "kinesis:PutRecords") == (k == "collector")
    ])
    error_message = "only the collector may put records"
  }
  assert {
    condition = alltrue([for k, p in aws_iam_role_policy.fn :
      contains(flatten([for s in jsondecode(p.policy).Statement : s.Action]), "kinesis:GetRecords") == contains(["archive", "vectors", "metrics"], k)
    ])
    error_message = "only consumers may get records"
  }
  assert {
    condition = alltrue([for k, p in aws_iam_role_policy.fn :
      length(setintersection(toset(flatten([for s in jsondecode(p.policy).Statement : s.Action])), toset([
        "s3:GetObject", "s3:DeleteObject", "s3:ListBucket", "dynamodb:Scan", "dynamodb:DeleteTable",
        "dynamodb:CreateTable", "kinesis:DeleteStream", "iam:PassRole", "secretsmanager:PutSecretValue",
      ]))) == 0
    ])
    error_message = "no function may read the archive, scan tables or administer resources"
  }
  assert {
    condition = (
      toset(one([for s in jsondecode(aws_iam_role_policy.fn["archive"].policy).Statement : s.Action if s.Sid == "WriteArchiveObjects"])) == toset(["s3:PutObject", "s3:AbortMultipartUpload"]) &&
      toset(one([for s in jsondecode(aws_iam_role_policy.fn["vectors"].policy).Statement : s.Action if s.Sid == "UpdateUserVectors"])) == toset(["dynamodb:GetItem", "dynamodb:UpdateItem"])
    )
    error_message = "archive writes objects, vectors updates items: nothing more"
  }

  # Lease table access is confined to the function's own app
  assert {
    condition = alltrue([for k in ["archive", "vectors", "metrics"] :
      one([for s in jsondecode(aws_iam_role_policy.fn[k].policy).Statement : (
        s.Resource == [aws_dynamodb_table.this["leases"].arn] &&
        try(s.Condition, null) == { "ForAllValues:StringEquals" = { "dynamodb:LeadingKeys" = [k] } }
      ) if contains(s.Resource, aws_dynamodb_table.this["leases"].arn)])
    ])
    error_message = "each consumer may touch only leases items whose app is its own name"
  }
}

run "long_running_consumers_get_least_privilege_policies_and_fan_out_consumers" {
  variables {
    consume = { applications = ["vectors", "metrics"], read_mode = "efo" }
  }

  assert {
    condition     = toset(keys(aws_kinesis_stream_consumer.consume)) == toset(["vectors", "metrics"]) && aws_kinesis_stream_consumer.consume["vectors"].name == "vectors"
    error_message = "one stream consumer per application, named as `consume --read-mode efo` names it"
  }
  assert {
    condition     = toset(keys(aws_iam_policy.consume)) == toset(["vectors", "metrics"])
    error_message = "one policy per long-running application"
  }
  assert {
    condition = alltrue(flatten([for k, p in aws_iam_policy.consume : [
      for s in jsondecode(p.policy).Statement : [for a in s.Action : !strcontains(a, "*")]
    ]]))
    error_message = "no action may contain '*'"
  }
  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_policy.consume["vectors"].policy).Statement : s.Resource])) == toset([
      aws_kinesis_stream.events.arn,
      aws_kinesis_stream_consumer.consume["vectors"].arn,
      aws_dynamodb_table.this["leases"].arn,
      aws_dynamodb_table.this["vectors"].arn,
      "${aws_s3_bucket.archive.arn}/errors/*",
    ])
    error_message = "vectors: the stream, its own stream consumer, leases, the vectors table and errors/ only"
  }
  assert {
    condition     = one([for s in jsondecode(aws_iam_policy.consume["vectors"].policy).Statement : s if s.Sid == "ReadStreamFanOut"]).Resource == [aws_kinesis_stream_consumer.consume["vectors"].arn] && one([for s in jsondecode(aws_iam_policy.consume["vectors"].policy).Statement : s if s.Sid == "ReadStreamFanOut"]).Action == ["kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"]
    error_message = "SubscribeToShard only on the application's own consumer"
  }
  assert {
    condition     = output.consume_stream_consumers["metrics"] == aws_kinesis_stream_consumer.consume["metrics"].arn && output.consume_policy_arns["vectors"] == aws_iam_policy.consume["vectors"].arn
    error_message = "outputs name the policies and stream consumers"
  }
}

run "long_running_consumers_polling_have_no_fan_out" {
  variables {
    consume = { applications = ["archive"] }
  }

  assert {
    condition     = length(aws_kinesis_stream_consumer.consume) == 0 && !strcontains(aws_iam_policy.consume["archive"].policy, "SubscribeToShard")
    error_message = "read_mode poll registers no stream consumer and grants no fan-out"
  }
}

run "the_vectors_reader_policy_reads_the_vectors_table_only" {
  assert {
    condition = jsondecode(aws_iam_policy.vectors_reader.policy).Statement == [{
      Sid      = "ReadUserVectors"
      Effect   = "Allow"
      Action   = ["dynamodb:BatchGetItem", "dynamodb:GetItem"]
      Resource = [aws_dynamodb_table.this["vectors"].arn]
    }]
    error_message = "the reader policy allows GetItem and BatchGetItem on the vectors table and nothing else"
  }
  assert {
    condition     = output.vectors_reader_policy_arn == aws_iam_policy.vectors_reader.arn
    error_message = "output vectors_reader_policy_arn"
  }
}
