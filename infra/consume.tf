# Long-running consumers (`clickstream consume`), run outside this
# deployment: a least-privilege managed policy per application, and with
# read_mode "efo" its enhanced fan-out stream consumer. The policies are the
# Lambda functions' statements without logs and the SQS DLQ (a long-running
# consumer retries a failed batch itself), plus what enhanced fan-out needs.

locals {
  consume_apps = toset(var.consume.applications)
  consume_efo  = var.consume.read_mode == "efo" ? local.consume_apps : toset([])

  consume_statements = {
    for k in local.consume_apps : k => concat(
      [
        {
          Sid    = "ReadStream"
          Effect = "Allow"
          # ListShards: shard discovery and resharding; GetShardIterator and
          # GetRecords: polling, and rebuilding a restarted shard's
          # de-duplication window in either mode.
          Action   = ["kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"]
          Resource = [aws_kinesis_stream.events.arn]
        },
      ],
      var.consume.read_mode == "efo" ? [
        {
          # The process registers its consumer when it is missing (e.g.
          # deregistered by hand); Terraform registers it first.
          Sid      = "RegisterFanOutConsumer"
          Effect   = "Allow"
          Action   = ["kinesis:RegisterStreamConsumer"]
          Resource = [aws_kinesis_stream.events.arn]
        },
        {
          Sid      = "ReadStreamFanOut"
          Effect   = "Allow"
          Action   = ["kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"]
          Resource = [aws_kinesis_stream_consumer.consume[k].arn]
        },
      ] : [],
      [local.dead_letter_statement, local.own_leases_statements[k]],
      local.data_statements[k],
      local.kms_statements,
    )
  }
}

resource "aws_kinesis_stream_consumer" "consume" {
  for_each = local.consume_efo

  name       = each.key
  stream_arn = aws_kinesis_stream.events.arn
}

resource "aws_iam_policy" "consume" {
  for_each = local.consume_apps

  name        = "${var.name}-consume-${each.key}"
  description = "What a long-running `clickstream consume ${each.key}` process needs (read mode ${var.consume.read_mode})"
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.consume_statements[each.key]
  })

  tags = local.tags
}
