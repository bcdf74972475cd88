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
      # From the functions' EMF lines (namespace Clickstream): the figures
      # the long-running consumers serve on /metrics.
      {
        title   = "Consumers: records processed (EMF)"
        metrics = [for k in keys(local.consumers) : ["Clickstream", "clickstream_consumer_records_total", "Function", local.fn_names[k], { stat = "Sum", label = k }]]
      },
      {
        title = "Consumers: bad records dead-lettered and failed batches (EMF)"
        metrics = concat(
          [for k in keys(local.consumers) : ["Clickstream", "clickstream_consumer_bad_records_total", "Function", local.fn_names[k], { stat = "Sum", label = "${k} bad records" }]],
          [for k in keys(local.consumers) : ["Clickstream", "clickstream_consumer_batch_failures_total", "Function", local.fn_names[k], { stat = "Sum", label = "${k} failed batches" }]],
        )
      },
      {
        title = "Vectors and metrics: DynamoDB calls and throttling retries (EMF)"
        metrics = concat(
          contains(keys(local.consumers), "vectors") ? [
            ["Clickstream", "clickstream_vectors_dynamodb_calls_total", "Function", local.fn_names["vectors"], { stat = "Sum", label = "vectors calls" }],
            ["Clickstream", "clickstream_vectors_retries_total_throttle", "Function", local.fn_names["vectors"], { stat = "Sum", label = "vectors throttled retries" }],
          ] : [],
          contains(keys(local.consumers), "metrics") ? [
            ["Clickstream", "clickstream_metrics_late_dropped_total", "Function", local.fn_names["metrics"], { stat = "Sum", label = "metrics: late events dropped" }],
          ] : [],
        )
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
