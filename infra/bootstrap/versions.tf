# Creates the S3 bucket that holds the state of envs/shared, envs/dev and envs/prod. Its own
# state is local (it cannot live in the bucket it creates); see the README for keeping it.
terraform {
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.95"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project   = "flash-tickets"
      ManagedBy = "terraform"
      Component = "terraform-state"
    }
  }
}
