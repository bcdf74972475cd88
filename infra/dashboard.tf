# One CloudWatch dashboard for the whole pipeline: stream in, consumers
# keeping up, failures, collector traffic, table activity. (The minute
# metrics themselves — hit rates, CTR — are charted by `clickstream api`.)

locals {
  fn_names = { for k in keys(local.functions) : k => "${var.name}-${k}" }

  all_widgets = concat(
    [
      {
        title   = "Stream: records in (per minute)"
        metrics = [["AWS/Kinesis", "IncomingRecords", "StreamName", local.stream_name, { stat = "Sum", label = "records" }]]
      },
      {
        title = "Stream: bytes in and throttled writes"
        metrics = [
          ["AWS/Kinesis", "IncomingBytes", "StreamName", local.stream_name, { stat = "Sum", label = "bytes" }],
          ["AWS/Kinesis", "WriteProvisionedThroughputExceeded", "StreamName", local.stream_name, { stat = "Sum", label = "throttled writes", yAxis = "right" }],
        ]
      },
      {
        title   = "Consumers: iterator age (ms, max)"
        metrics = [for k in keys(local.consumers) : ["AWS/Lambda", "IteratorAge", "FunctionName", local.fn_names[k], { stat = "Maximum", label = k }]]
      },
      {
        title   = "Functions: errors"
        metrics = [for k in keys(local.functions) : ["AWS/Lambda", "Errors", "FunctionName", local.fn_names[k], { stat = "Sum", label = k }]]
      },
      {
        title   = "Functions: duration p99 (ms)"
        metrics = [for k in keys(local.functions) : ["AWS/Lambda", "Duration", "FunctionName", local.fn_names[k], { stat = "p99", label = k }]]
      },
      {
        title   = "Functions: concurrent executions (max)"
        metrics = [for k in keys(local.functions) : ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", local.fn_names[k], { stat = "Maximum", label = k }]]
      },
      {
        title   = "Dead-letter queue: failed batches waiting"
        metrics = [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", local.dlq_name, { stat = "Maximum", label = "messages" }]]
      },
      {
        title   = "DynamoDB: write units consumed"
        metrics = [for k, t in local.tables : ["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", t.name, { stat = "Sum", label = k }]]
      },
    ],
    !local.collector ? [] : [
      {
        title = "Collector: requests and errors"
        metrics = [
          ["AWS/ApiGateway", "Count", "ApiId", aws_apigatewayv2_api.collector[0].id, "Stage", "$default", { stat = "Sum", label = "requests" }],
          ["AWS/ApiGateway", "4xx", "ApiId", aws_apigatewayv2_api.collector[0].id, "Stage", "$default", { stat = "Sum", label = "4xx" }],
          ["AWS/ApiGateway", "5xx", "ApiId", aws_apigatewayv2_api.collector[0].id, "Stage", "$default", { stat = "Sum", label = "5xx" }],
        ]
      },
      {
        title   = "Collector: latency p99 (ms)"
        metrics = [["AWS/ApiGateway", "Latency", "ApiId", aws_apigatewayv2_api.collector[0].id, "Stage", "$default", { stat = "p99", label = "p99" }]]
      },
    ],
  )
  # A widget without metrics (every consumer disabled) is rejected.
  dashboard_widgets = [for w in local.all_widgets : w if length(w.metrics) > 0]
}

resource "aws_cloudwatch_dashboard" "this" {
  count = var.enable_dashboard ? 1 : 0

  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = [
      for i, w in local.dashboard_widgets : {
        type   = "metric"
        x      = (i % 2) * 12
        y      = floor(i / 2) * 6
        width  = 12
        height = 6
        properties = {
          title   = w.title
          metrics = w.metrics
          view    = "timeSeries"
          region  = local.region
          period  = 60
          stacked = false
        }
      }
    ]
  })
}
