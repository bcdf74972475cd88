# Test only: variables of the moto_server run (infra/test.sh). They switch on
# the optional resource types so apply and destroy cover every one, and make
# the deployment destroyable.
environment                 = "test"
archive_prefix              = "lake"
table_deletion_protection   = false
bucket_force_destroy        = true
bucket_versioning           = true
secret_recovery_window_days = 0
collector_api_keys          = ["moto-test-key-0123456789"]
read_api_keys               = ["moto-read-key-0123456789"]
alarm_emails                = ["oncall@example.com"]
alarm_webhook_urls          = ["https://hooks.example.com/clickstream"]
shard_count                 = 2

vectors = {
  enhanced_fan_out = true
}

collector = {
  allowed_origins = ["https://app.example.com"]
}

# Long-running consumers beside the Lambda ones (in a real deployment
# an application runs in one place): their policies and a stream consumer.
consume = {
  applications = ["metrics"]
  read_mode    = "efo"
}
