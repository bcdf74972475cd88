# The HTTP collector (producers/collector in a Lambda) behind an API Gateway
# HTTP API: payload format 2.0 (events.APIGatewayV2HTTPRequest), stage-level
# throttling and access logs, which a bare function URL does not offer.
# Apps authenticate with bearer API keys read from Secrets Manager.

locals {
  collector        = var.collector.enabled
  create_api_keys  = local.collector && var.collector.api_keys_secret_arn == null
  collector_routes = local.collector ? toset(["POST /v1/events", "OPTIONS /v1/events", "GET /healthz"]) : toset([])

  api_keys_secret_arn = (
    !local.collector ? null :
    local.create_api_keys ? aws_secretsmanager_secret.api_keys[0].arn : var.collector.api_keys_secret_arn
  )
}

# SecretString: a JSON array of bearer keys, e.g. ["k1","k2"]. The collector
# reads it at start (CLICKSTREAM_API_KEYS_SECRET_ARN); rotate by adding the new
# key, redeploying or waiting for new instances, then removing the old one.
resource "aws_secretsmanager_secret" "api_keys" {
  count = local.create_api_keys ? 1 : 0

  name                    = "${var.name}/collector-api-keys"
  description             = "Bearer API keys the ${var.name} collector accepts (JSON array of strings)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "api_keys" {
  count = local.create_api_keys && length(var.collector_api_keys) > 0 ? 1 : 0

  secret_id     = aws_secretsmanager_secret.api_keys[0].id
  secret_string = jsonencode(var.collector_api_keys)
}

resource "aws_apigatewayv2_api" "collector" {
  count = local.collector ? 1 : 0

  name          = "${var.name}-collector"
  description   = "Clickstream collector: POST /v1/events"
  protocol_type = "HTTP"
  # CORS is answered by the collector itself (OPTIONS route), from one
  # allowed-origins list.
  tags = local.tags
}

resource "aws_apigatewayv2_integration" "collector" {
  count = local.collector ? 1 : 0

  api_id                 = aws_apigatewayv2_api.collector[0].id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.fn["collector"].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "collector" {
  for_each = local.collector_routes

  api_id    = aws_apigatewayv2_api.collector[0].id
  route_key = each.key
  target    = "integrations/${aws_apigatewayv2_integration.collector[0].id}"
}

resource "aws_cloudwatch_log_group" "collector_access" {
  count = local.collector ? 1 : 0

  name              = "/aws/apigateway/${var.name}-collector"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}

resource "aws_apigatewayv2_stage" "collector" {
  count = local.collector ? 1 : 0

  api_id      = aws_apigatewayv2_api.collector[0].id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.collector.throttling_rate_limit
    throttling_burst_limit = var.collector.throttling_burst_limit
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.collector_access[0].arn
    format = jsonencode({
      requestId      = "$context.requestId"
      ip             = "$context.identity.sourceIp"
      requestTime    = "$context.requestTime"
      routeKey       = "$context.routeKey"
      status         = "$context.status"
      responseLength = "$context.responseLength"
      latencyMs      = "$context.responseLatency"
      integrationErr = "$context.integrationErrorMessage"
      userAgent      = "$context.identity.userAgent"
    })
  }

  tags = local.tags
}

resource "aws_lambda_permission" "collector_api" {
  count = local.collector ? 1 : 0

  statement_id  = "AllowInvokeFromCollectorApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.fn["collector"].function_name
  principal     = "apigateway.amazonaws.com"
  # Only this API's routes may invoke the function.
  source_arn = "${aws_apigatewayv2_api.collector[0].execution_arn}/*/*"
}
