# Test only: copied next to the module's files by infra/test.sh to apply the
# module against moto_server on 127.0.0.1. The endpoint comes from
# AWS_ENDPOINT_URL, which the script sets; nothing here can reach AWS.
provider "aws" {
  region     = "us-east-1"
  access_key = "testing"
  secret_key = "testing"

  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  # Left false on purpose: the module builds names from the account id, and
  # moto answers sts:GetCallerIdentity with 123456789012.
  skip_requesting_account_id = false

  s3_use_path_style = true
}
