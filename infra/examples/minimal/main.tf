# A minimal Clickstream deployment: every default (on-demand stream, the
# three Lambda consumers, the collector API, Athena table, alarms) and alarm
# emails to one address.
#
#   make lambdas                                  # at the repository root
#   cd infra/examples/minimal
#   terraform init && terraform apply -var alarm_email=oncall@example.com
#
# Copy this directory to start your own deployment; point `source` at
# infra/ (a path, or a git URL with ?ref= to pin a release).

terraform {
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100.0, < 6.0.0"
    }
  }

  # Keep state remote and encrypted in real use: it names every resource and,
  # if you pass collector_api_keys, holds the keys. For example:
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "clickstream/prod.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

variable "region" {
  description = "AWS region to deploy to. Default \"eu-west-1\"."
  type        = string
  default     = "eu-west-1"
}

variable "alarm_email" {
  description = "Where alarms are emailed (confirm the subscription email). Default null: no subscriber."
  type        = string
  default     = null
}

provider "aws" {
  region = var.region
}

module "clickstream" {
  source = "../.."

  name         = "clickstream"
  environment  = "prod"
  alarm_emails = var.alarm_email == null ? [] : [var.alarm_email]
}

output "collector_url" {
  description = "POST events here with `Authorization: Bearer KEY`."
  value       = module.clickstream.collector_url
}

output "collector_api_keys_secret_arn" {
  description = "Put the API keys here: aws secretsmanager put-secret-value --secret-id ARN --secret-string '[\"KEY\"]'."
  value       = module.clickstream.collector_api_keys_secret_arn
}

output "cli_env" {
  description = "Shell lines pointing the clickstream CLI at this deployment."
  value       = module.clickstream.cli_env
}

output "dashboard_url" {
  description = "The CloudWatch dashboard."
  value       = module.clickstream.dashboard_url
}

output "athena" {
  description = "Query the archive: the workgroup and the table."
  value       = "${module.clickstream.athena_workgroup}: SELECT * FROM ${module.clickstream.glue_table} LIMIT 10"
}
