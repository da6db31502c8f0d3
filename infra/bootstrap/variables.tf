variable "region" {
  description = "Region of the state bucket."
  type        = string
  default     = "eu-west-1"
}

variable "bucket_prefix" {
  description = "The bucket is named <prefix>-<account id>-<region> (globally unique without hard-coding the account)."
  type        = string
  default     = "flash-tickets-tfstate"
}

variable "noncurrent_version_retention_days" {
  description = "Days old state versions are kept (for rollback after a bad apply)."
  type        = number
  default     = 90
}
