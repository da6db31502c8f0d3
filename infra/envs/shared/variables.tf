variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "repository" {
  description = "Source repository, recorded in every resource's Repository tag."
  type        = string
  default     = "flash-tickets"
}

variable "repository_names" {
  description = "One image repository per service (names agreed with gitops/)."
  type        = list(string)
  default     = ["flash/gateway", "flash/api", "flash/pay", "flash/web"]
}

variable "keep_tagged_images" {
  description = "How many images each repository keeps (older ones expire)."
  type        = number
  default     = 100
}

variable "untagged_image_expiry_days" {
  description = "Days after which untagged images (superseded builds, failed pushes) expire."
  type        = number
  default     = 7
}

variable "pull_account_ids" {
  description = "Other AWS accounts (e.g. a separate prod account) whose nodes may pull the images."
  type        = list(string)
  default     = []
}
