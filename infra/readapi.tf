# The read API (consumers/readapi in a Lambda, lambdas/readapi) behind an API
# Gateway HTTP API: what recommendation services and dashboards read. With
# read_api.auth = "keys" the function checks bearer keys from Secrets
# Manager; with "iam" API Gateway checks SigV4 signatures on every route (a
# browser cannot sign, so the dashboard is for keys mode).

locals {
  read_api             = var.read_api.enabled
  read_api_iam         = local.read_api && var.read_api.auth == "iam"
  create_read_api_keys = local.read_api && !local.read_api_iam && var.read_api.api_keys_secret_arn == null

  read_api_keys_secret_arn = (
    !local.read_api || local.read_api_iam ? null :
    local.create_read_api_keys ? aws_secretsmanager_secret.read_api_keys[0].arn : var.read_api.api_keys_secret_arn
  )
}

# SecretString: a JSON array of bearer keys. Separate from the collector's:
# apps that send events are not readers of every user's vector.
resource "aws_secretsmanager_secret" "read_api_keys" {
  count = local.create_read_api_keys ? 1 : 0

  name                    = "${var.name}/read-api-keys"
  description             = "Bearer API keys the ${var.name} read API accepts (JSON array of strings)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "read_api_keys" {
  count = local.create_read_api_keys && length(var.read_api_keys) > 0 ? 1 : 0

  secret_id     = aws_secretsmanager_secret.read_api_keys[0].id
  secret_string = jsonencode(var.read_api_keys)
}

resource "aws_apigatewayv2_api" "read" {
  count = local.read_api ? 1 : 0

  name          = "${var.name}-read"
  description   = "Clickstream read API: GET /v1/users/{id}/vector, GET /v1/metrics/{metric}, the dashboard"
  protocol_type = "HTTP"
  tags          = local.tags
}

resource "aws_apigatewayv2_integration" "read" {
  count = local.read_api ? 1 : 0

  api_id                 = aws_apigatewayv2_api.read[0].id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.fn["readapi"].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "read" {
  count = local.read_api ? 1 : 0

  api_id             = aws_apigatewayv2_api.read[0].id
  route_key          = "$default"
  target             = "integrations/${aws_apigatewayv2_integration.read[0].id}"
  authorization_type = local.read_api_iam ? "AWS_IAM" : "NONE"
}

resource "aws_cloudwatch_log_group" "read_access" {
  count = local.read_api ? 1 : 0

  name              = "/aws/apigateway/${var.name}-read"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}

resource "aws_apigatewayv2_stage" "read" {
  count = local.read_api ? 1 : 0

  api_id      = aws_apigatewayv2_api.read[0].id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.read_api.throttling_rate_limit
    throttling_burst_limit = var.read_api.throttling_burst_limit
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.read_access[0].arn
    format = jsonencode({
      requestId      = "$context.requestId"
      ip             = "$context.identity.sourceIp"
      caller         = "$context.identity.caller"
      requestTime    = "$context.requestTime"
      routeKey       = "$context.routeKey"
      path           = "$context.path"
      status         = "$context.status"
      responseLength = "$context.responseLength"
      latencyMs      = "$context.responseLatency"
      integrationErr = "$context.integrationErrorMessage"
    })
  }

  tags = local.tags
}

resource "aws_lambda_permission" "read_api" {
  count = local.read_api ? 1 : 0

  statement_id  = "AllowInvokeFromReadApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.fn["readapi"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.read[0].execution_arn}/*/*"
}

# With IAM authorization: what a caller's role needs (GET on this API only).
resource "aws_iam_policy" "read_api_invoke" {
  count = local.read_api_iam ? 1 : 0

  name        = "${var.name}-read-api-invoke"
  description = "Call the ${var.name} read API (GET, SigV4-signed)"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "InvokeReadApi"
      Effect   = "Allow"
      Action   = ["execute-api:Invoke"]
      Resource = ["${aws_apigatewayv2_api.read[0].execution_arn}/*/GET/*"]
    }]
  })
  tags = local.tags
}
