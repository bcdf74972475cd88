# Bad input fails at plan time with a message that says what to change.
# Each expect_failures entry must fail on its own, so one run checks several;
# a validation that reads another variable is skipped when that variable is
# itself invalid, hence the separate runs.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  lambda_dist_dir = "tests/fixtures/dist"
}

run "unsafe_or_impossible_settings_are_refused" {
  command = plan

  variables {
    # vectors and metrics must read each shard in order
    vectors = { parallelization_factor = 2 }
    metrics = { parallelization_factor = 3 }
    # a failing batch may not be retried forever
    archive = { maximum_record_age_seconds = -1 }
    # names must fit AWS naming rules
    name        = "Clickstream_Prod"
    shard_count = 0
    kms_key_arn = "alias/clickstream"
    # guessable keys
    collector_api_keys = ["short"]
    # S3 needs 30 days in Standard-IA before Glacier IR
    archive_transition_ia_days         = 30
    archive_transition_glacier_ir_days = 45
  }

  expect_failures = [
    var.vectors,
    var.metrics,
    var.archive,
    var.name,
    var.shard_count,
    var.kms_key_arn,
    var.collector_api_keys,
    var.archive_transition_glacier_ir_days,
  ]
}

run "settings_beyond_lambda_and_api_gateway_limits_are_refused" {
  command = plan

  variables {
    # Lambda reads at most 10,000 records per batch
    vectors = { batch_size = 20000 }
    # API Gateway gives up on an integration after 30 s
    collector = { timeout_seconds = 30 }
  }

  expect_failures = [var.vectors, var.collector]
}

run "keys_go_in_one_secret_and_zips_must_exist" {
  command = plan

  variables {
    # keys go either in the module's secret or in yours, not both
    collector_api_keys = ["key-one-0123456789"]
    collector          = { api_keys_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:k-AbCdEf" }
    # `make lambdas` has not run
    lambda_dist_dir = "tests/fixtures/no-such-dir"
  }

  expect_failures = [var.collector_api_keys, aws_lambda_function.fn]
}

run "consume_rejects_unknown_applications_and_modes" {
  command = plan
  variables {
    consume = { applications = ["searcher"], read_mode = "push" }
  }
  expect_failures = [var.consume]
}
