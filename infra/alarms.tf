# Alarms on what needs a person: consumers falling behind, function errors and
# throttles, batches given up on (DLQ), the stream refusing writes and the
# collector failing. All notify one SNS topic, on ALARM and on OK.

locals {
  create_alarm_topic = var.enable_alarms && var.alarm_sns_topic_arn == null
  alarm_topic_arn = (
    !var.enable_alarms ? null :
    local.create_alarm_topic ? aws_sns_topic.alarms[0].arn : var.alarm_sns_topic_arn
  )

  alarms = !var.enable_alarms ? {} : merge(
    {
      for k, v in local.consumers : "${k}-iterator-age" => {
        description = "The ${k} consumer is falling behind: its oldest unprocessed record is over ${v.iterator_age_alarm_seconds} s old (3 of the last 5 minutes)."
        namespace   = "AWS/Lambda"
        metric      = "IteratorAge"
        statistic   = "Maximum"
        dimensions  = { FunctionName = aws_lambda_function.fn[k].function_name }
        threshold   = v.iterator_age_alarm_seconds * 1000
        period      = 60
        evaluate    = 5
        datapoints  = 3
      }
    },
    {
      for k, v in local.consumers : "${k}-dlq-delivery-failures" => {
        description = "Lambda could not send a failed ${k} batch notice to the dead-letter queue: that batch is skipped with no record of it."
        namespace   = "AWS/Lambda"
        metric      = "DestinationDeliveryFailures"
        statistic   = "Sum"
        dimensions  = { FunctionName = aws_lambda_function.fn[k].function_name }
        threshold   = 0
        period      = 300
        evaluate    = 1
        datapoints  = 1
      }
    },
    {
      for k, v in local.consumers : "${k}-batch-failures" => {
        description = "The ${k} function reported failed batches 3 of the last 5 minutes (EMF clickstream_consumer_batch_failures_total): a store or the dead-letter bucket keeps failing, and the shard is retrying instead of moving."
        namespace   = "Clickstream"
        metric      = "clickstream_consumer_batch_failures_total"
        statistic   = "Sum"
        dimensions  = { Function = aws_lambda_function.fn[k].function_name }
        threshold   = 0
        period      = 60
        evaluate    = 5
        datapoints  = 3
      }
    },
    {
      for k in keys(local.functions) : "${k}-errors" => {
        description = "The ${k} function failed more than ${var.lambda_errors_alarm_threshold} times in 5 minutes (consumers retry the batch; see its logs)."
        namespace   = "AWS/Lambda"
        metric      = "Errors"
        statistic   = "Sum"
        dimensions  = { FunctionName = aws_lambda_function.fn[k].function_name }
        threshold   = var.lambda_errors_alarm_threshold
        period      = 300
        evaluate    = 1
        datapoints  = 1
      }
    },
    {
      for k in keys(local.functions) : "${k}-throttles" => {
        description = "Invocations of the ${k} function were throttled (account or reserved concurrency exhausted)."
        namespace   = "AWS/Lambda"
        metric      = "Throttles"
        statistic   = "Sum"
        dimensions  = { FunctionName = aws_lambda_function.fn[k].function_name }
        threshold   = 0
        period      = 300
        evaluate    = 1
        datapoints  = 1
      }
    },
    {
      "dlq-depth" = {
        description = "Consumer batches were given up on after their retries or maximum record age: the DLQ holds their shard and sequence ranges, replayable while the stream retains them."
        namespace   = "AWS/SQS"
        metric      = "ApproximateNumberOfMessagesVisible"
        statistic   = "Maximum"
        dimensions  = { QueueName = aws_sqs_queue.dlq.name }
        threshold   = 0
        period      = 300
        evaluate    = 1
        datapoints  = 1
      }
      "stream-write-throttled" = {
        description = "The stream has refused writes for 5 minutes running: producers are above its capacity (add shards, or check on-demand scaling)."
        namespace   = "AWS/Kinesis"
        metric      = "WriteProvisionedThroughputExceeded"
        statistic   = "Sum"
        dimensions  = { StreamName = aws_kinesis_stream.events.name }
        threshold   = 0
        period      = 60
        evaluate    = 5
        datapoints  = 5
      }
    },
    !local.collector ? {} : {
      "collector-5xx" = {
        description = "The collector API answered more than ${var.collector_5xx_alarm_threshold} 5xx responses in 5 minutes: apps are failing to send events."
        namespace   = "AWS/ApiGateway"
        metric      = "5xx"
        statistic   = "Sum"
        dimensions  = { ApiId = aws_apigatewayv2_api.collector[0].id, Stage = "$default" }
        threshold   = var.collector_5xx_alarm_threshold
        period      = 300
        evaluate    = 1
        datapoints  = 1
      }
    },
  )
}

resource "aws_sns_topic" "alarms" {
  count = local.create_alarm_topic ? 1 : 0

  name = "${var.name}-alarms"
  # CloudWatch cannot publish to a topic encrypted with the AWS managed SNS
  # key; alarm notices hold no event data, so the topic is left unencrypted.
  tags = local.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each = local.create_alarm_topic ? toset(var.alarm_emails) : toset([])

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = each.key
}

resource "aws_sns_topic_subscription" "webhook" {
  # The URLs are secrets (a webhook URL is its own credential), so they are
  # counted rather than used as for_each keys.
  count = local.create_alarm_topic ? nonsensitive(length(var.alarm_webhook_urls)) : 0

  topic_arn              = aws_sns_topic.alarms[0].arn
  protocol               = "https"
  endpoint               = var.alarm_webhook_urls[count.index]
  endpoint_auto_confirms = false
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  statistic           = each.value.statistic
  dimensions          = each.value.dimensions
  period              = each.value.period
  evaluation_periods  = each.value.evaluate
  datapoints_to_alarm = each.value.datapoints
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  # No data means no traffic or no failures, never an alarm.
  treat_missing_data = "notBreaching"

  alarm_actions = [local.alarm_topic_arn]
  ok_actions    = [local.alarm_topic_arn]

  tags = local.tags
}
