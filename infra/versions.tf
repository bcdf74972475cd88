terraform {
  # 1.9: variable validations that refer to other variables.
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.100 is the version tested offline (infra/test.sh); 6.x renames
      # attributes used here (aws_region.name).
      version = ">= 5.100.0, < 6.0.0"
    }
  }
}
