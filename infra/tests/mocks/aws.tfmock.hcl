# Values the mock aws provider returns in tests/*.tftest.hcl. Without them it
# invents random strings, and the provider rejects those where it validates
# an ARN (role, destination, alarm action...). Types with several instances
# (tables, functions) keep random ARNs so policies can be told apart.

mock_data "aws_caller_identity" {
  defaults = {
    account_id = "123456789012"
    arn        = "arn:aws:iam::123456789012:user/test"
  }
}

mock_data "aws_region" {
  defaults = {
    name = "eu-west-1"
  }
}

mock_resource "aws_iam_role" {
  defaults = {
    arn = "arn:aws:iam::123456789012:role/mock-role"
  }
}

mock_resource "aws_cloudwatch_log_group" {
  defaults = {
    arn = "arn:aws:logs:eu-west-1:123456789012:log-group:mock"
  }
}

mock_resource "aws_sns_topic" {
  defaults = {
    arn = "arn:aws:sns:eu-west-1:123456789012:mock-alarms"
  }
}

mock_resource "aws_sqs_queue" {
  defaults = {
    arn = "arn:aws:sqs:eu-west-1:123456789012:mock-dlq"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/mock-dlq"
  }
}

mock_resource "aws_kinesis_stream" {
  defaults = {
    arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/mock-events"
  }
}

mock_resource "aws_kinesis_stream_consumer" {
  defaults = {
    arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/mock-events/consumer/mock:1"
  }
}

mock_resource "aws_lambda_function" {
  defaults = {
    arn        = "arn:aws:lambda:eu-west-1:123456789012:function:mock"
    invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:mock/invocations"
  }
}

mock_resource "aws_apigatewayv2_api" {
  defaults = {
    id            = "mockapi"
    api_endpoint  = "https://mockapi.execute-api.eu-west-1.amazonaws.com"
    execution_arn = "arn:aws:execute-api:eu-west-1:123456789012:mockapi"
  }
}

mock_resource "aws_apigatewayv2_stage" {
  defaults = {
    invoke_url = "https://mockapi.execute-api.eu-west-1.amazonaws.com/"
  }
}

mock_resource "aws_secretsmanager_secret" {
  defaults = {
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:clickstream/collector-api-keys-AbCdEf"
  }
}

mock_resource "aws_s3_bucket" {
  defaults = {
    arn = "arn:aws:s3:::mock-archive"
  }
}
